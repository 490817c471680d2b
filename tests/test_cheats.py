"""Exercises that cannot be gamed (issue 23).

* ``llmcourse.rules`` finds, with ``ast``, a forbidden call however it is spelt: directly, through
  an alias, a wrapper, a default argument, a global container, a class, ``getattr``, ``eval`` ...;
  and it leaves allowed calls and look-alike local names alone (fast unit tests, no kernel);
* graded by the real grader, each cheat and each usual mistake of the issue scores 0 for its part,
  with a one-line reason, and the mistakes fail a *visible* test (marked slow: each notebook is
  graded once, with several cheats in different parts).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import nbformat
import pytest

from conftest import EXERCISE_SOURCES, ROOT
from llmcourse.checks import CheckFailed
from llmcourse.rules import check_matrix_product, check_own_work, find_uses

# ---------------------------------------------------------------------------------------------
# The rules on their own: functions in a module written to a temporary folder


CHEATS = '''
import functools
import numpy as np
import torch
from torch.nn import functional as F
from llmcourse import attention
from llmcourse.attention import causal_mask as cm


def direct(n, k=None):
    return attention.causal_mask(n, k)


def alias(n, k=None):
    return cm(n, k)


def _helper(n, k):
    return attention.causal_mask(n, k).clone()


def wrapped(n, k=None):
    return _helper(n, k)


def imported_inside(n, k=None):
    from llmcourse.attention import causal_mask
    return causal_mask(n, k)


def module_imported_inside(n, k=None):
    import llmcourse.attention as a
    return a.causal_mask(n, k)


def default_argument(n, k=None, f=attention.causal_mask):
    return f(n, k)


TABLE = {"mask": attention.causal_mask}
PARTIAL = functools.partial(attention.causal_mask)


def in_a_dict(n, k=None):
    return TABLE["mask"](n, k)


def in_a_partial(n, k=None):
    return PARTIAL(n, k)


def by_getattr(n, k=None):
    return getattr(attention, "causal_mask")(n, k)


def by_computed_getattr(n, k=None):
    return getattr(attention, "causal_" + "mask")(n, k)


def by_eval(n, k=None):
    return eval("attention.causal_mask")(n, k)


def by_globals(n, k=None):
    return globals()["attention"].causal_mask(n, k)


def by_dict(n, k=None):
    return attention.__dict__["causal_mask"](n, k)


class _Masker:
    def __call__(self, n, k=None):
        return attention.causal_mask(n, k)


_masker = _Masker()


def by_instance(n, k=None):
    return _masker(n, k)


by_lambda = lambda n, k=None: attention.causal_mask(n, k)

exec("def made_by_exec(n, k=None):\\n    return attention.causal_mask(n, k)")


def calls_exec_made(n, k=None):
    return made_by_exec(n, k)


def sdpa(x, w_q, w_k, w_v):
    return F.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, is_causal=True)


def sdpa_full_name(x, w_q, w_k, w_v):
    return torch.nn.functional.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, is_causal=True)


def softmax_method(scores):
    return scores.softmax(-1)


def whitelist_eval(expression):
    if set(expression) <= set("0123456789+-*/(). "):
        return eval(expression)
    raise ValueError("not allowed")


def builtins_eval(expression):
    import builtins
    return builtins.eval(expression)


def compile_and_run(expression):
    return (lambda: None).__class__(compile(expression, "", "eval"), {})()


def lookup_by_index(ids, table):
    """one_hot @ table, says the docstring"""
    return np.asarray(table)[ids]


def lookup_by_loop(ids, table):
    unused = np.eye(2) @ np.eye(2)
    rows = [table[i] for i in ids]
    return np.array(rows)


def lookup_by_take(ids, table):
    return np.take(table, ids, axis=0) + 0 * (np.eye(1) @ np.eye(1)).sum()


_PRECOMPUTED = {n: attention.causal_mask(n) for n in range(1, 10)}


def precomputed(n, k=None):
    return _PRECOMPUTED[n]


def private_function(x, w_q, w_k, w_v):
    return torch._C._nn.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, is_causal=True)


def another_course_module(text):
    from llmcourse import chat
    return chat.parse_tool_call(text)[1]
'''

HONEST = '''
import ast
import re

import numpy as np
import torch


def honest(n_queries, n_keys=None):
    """Not attention.causal_mask: only the docstring says it (and a comment: @)."""
    n_keys = n_queries if n_keys is None else n_keys
    attention = torch.ones(n_queries, n_keys, dtype=torch.bool)  # a local named like the module
    return torch.tril(attention, diagonal=n_keys - n_queries)


def softmax_function(scores):
    return torch.softmax(scores, dim=-1)


def literal_tools(expression):
    return re.compile(r"\\d+").findall(expression), ast.parse(expression, mode="eval")


def lookup_by_product(ids, table):
    table = np.asarray(table, dtype=float)
    one_hot = np.zeros((len(ids), table.shape[0]))
    one_hot[np.arange(len(ids)), ids] = 1.0
    return one_hot @ table


def lookup_by_eye(ids, table):
    return np.eye(np.asarray(table).shape[0])[ids] @ table
'''

ATTENTION = ["llmcourse.attention", "torch.nn.functional.scaled_dot_product_attention"]


def _module(folder, name, text):
    (folder / f"{name}.py").write_text(text)
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cheats(tmp_path_factory):
    return _module(tmp_path_factory.mktemp("cheats"), "learner_cheats", CHEATS)


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    return _module(tmp_path_factory.mktemp("honest"), "learner_honest", HONEST)


@pytest.mark.parametrize("name", [
    "direct", "alias", "wrapped", "imported_inside", "module_imported_inside", "default_argument",
    "in_a_dict", "in_a_partial", "by_getattr", "by_instance", "by_lambda", "calls_exec_made",
    "sdpa", "sdpa_full_name", "precomputed"])
def test_a_forbidden_call_is_found_however_it_is_spelt(cheats, name):
    uses = find_uses(getattr(cheats, name), ATTENTION)
    assert uses, name
    assert "this part asks you to write it yourself" in uses[0], uses


@pytest.mark.parametrize("name", ["by_computed_getattr", "by_eval", "by_globals", "by_dict"])
def test_dynamic_lookups_are_refused(cheats, name):
    uses = find_uses(getattr(cheats, name), ATTENTION)
    assert uses and "running code from text" in uses[0], uses


def test_the_message_names_the_function_and_what_it_calls(cheats):
    line = find_uses(cheats.wrapped, ATTENTION)[0]
    assert line.startswith("wrapped uses attention.causal_mask (in _helper, which it calls): ")
    assert "llmcourse.attention" in line and "\n" not in line
    with pytest.raises(CheckFailed) as err:
        check_own_work(cheats.alias, ATTENTION)
    first = str(err.value).splitlines()[0]
    assert first.startswith("alias uses cm (that is llmcourse.attention.causal_mask)"), first


def test_private_functions_and_other_course_modules_are_refused(cheats):
    uses = find_uses(cheats.private_function, ATTENTION)
    assert uses and "private functions of a library" in uses[0], uses
    uses = find_uses(cheats.another_course_module, ["llmcourse.calculator", "llmcourse"])
    assert uses and uses[0].endswith("not to call llmcourse."), uses
    lines = find_uses(cheats.precomputed, ATTENTION)
    assert any("computed at the top of the cell that defines it" in line for line in lines), lines


def test_allowed_code_and_lookalike_names_pass(honest, cheats):
    check_own_work(honest.honest, ATTENTION)
    check_own_work(honest.softmax_function, ATTENTION)  # softmax is not this part
    check_own_work(honest.literal_tools, ["llmcourse.calculator"])  # re.compile is not compile
    assert find_uses(honest.softmax_function, ["torch.softmax", "torch.Tensor.softmax"])
    assert find_uses(cheats.softmax_method, ["torch.softmax", "torch.Tensor.softmax"])


def test_the_answer_must_be_the_learners_own_function(cheats):
    import llmcourse.attention

    with pytest.raises(CheckFailed, match="should be your own function.*llmcourse.attention"):
        check_own_work(llmcourse.attention.causal_mask, ATTENTION)
    with pytest.raises(CheckFailed, match="should be your own function"):
        check_own_work(cheats.PARTIAL, ATTENTION)


@pytest.mark.parametrize("name", ["whitelist_eval", "builtins_eval", "compile_and_run"])
def test_code_execution_is_refused(cheats, name):
    uses = find_uses(getattr(cheats, name), ["llmcourse.calculator"])
    assert uses and "running code from text" in uses[0], uses
    # a part that allows it (allow_exec=True) lets it through
    assert find_uses(getattr(cheats, name), ["llmcourse.calculator"], allow_exec=True) == []


def test_matrix_product_check_reads_code_not_text(honest, cheats):
    check_matrix_product(honest.lookup_by_product, "table", "ids")
    check_matrix_product(honest.lookup_by_eye, "table", "ids")
    for name in ["lookup_by_index", "lookup_by_loop", "lookup_by_take"]:
        with pytest.raises(CheckFailed):
            check_matrix_product(getattr(cheats, name), "table", "ids")


# ---------------------------------------------------------------------------------------------
# Graded by the real grader: each cheat and mistake scores 0 for its part


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


def _solved(stem):
    """The learner version of an exercise with the source's solutions filled in."""
    source_path = next(p for p in EXERCISE_SOURCES if p.stem == stem)
    learner = nbformat.read(ROOT / "exercises" / f"{stem}.ipynb", as_version=4)
    source = nbformat.read(source_path, as_version=4)
    solutions = {_meta(c)["grade_id"]: c.source for c in source.cells if _meta(c).get("solution")}
    for cell in learner.cells:
        gid = _meta(cell).get("grade_id")
        if gid in solutions:
            cell.source = solutions[gid]
    return learner


def _grade_with(stem, replacements, tmp_path):
    """Grade the solved exercise with some solution cells replaced; {test id: result}."""
    nb = _solved(stem)
    for gid, code in replacements.items():
        cell = next(c for c in nb.cells if _meta(c).get("grade_id") == gid)
        cell.source = textwrap.dedent(code).strip("\n")
    folder = tmp_path / stem
    folder.mkdir()
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    proc = subprocess.run([sys.executable, "-m", "llmcourse.grade", str(path), "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["problems"] == [], report["problems"]
    return {t["id"]: t for t in report["tests"]}


def _assert_zero(results, test_id, *phrases, visible=False):
    t = results[test_id]
    assert t["points"] == 0 and not t["passed"], t
    assert "\n" not in t["message"]
    for phrase in phrases:
        assert phrase in t["message"], t
    if visible:
        assert not t["message"].startswith("a hidden test failed"), t


def _assert_rest_pass(results, cheated):
    for test_id, t in results.items():
        if test_id not in cheated:
            assert t["passed"], t


WRITE_IT = "this part asks you to write it yourself"
NO_EXEC = "does not allow running code from text"


@pytest.mark.slow
def test_exercise_4_calling_the_reference_and_a_docstring_with_an_at(tmp_path):
    results = _grade_with("04_embeddings", {
        "cosine": """
            def cosine(a, b):
                return float(embeddings.cosine_similarity(a, b))
            """,
        "nearest": """
            def nearest(word, vocab, vectors, k):
                wv = embeddings.WordVectors(list(vocab), np.asarray(vectors, dtype=float))
                return [w for w, _ in wv.most_similar(word, k)]
            """,
        "lookup_by_matmul": """
            def lookup_by_matmul(ids, table):
                \"\"\"The rows of table for the ids, as one_hot(ids) @ table.\"\"\"
                return np.asarray(table, dtype=float)[ids]
            """,
        "skipgram_pairs": """
            def skipgram_pairs(words, window):
                c, o = embeddings.skipgram_pairs(range(len(words)), window)
                return [(words[i], words[j]) for i, j in sorted(zip(c.tolist(), o.tolist()))]
            """,
        "ns_loss_and_grads": """
            def sigmoid(s):
                return 1 / (1 + np.exp(-s))


            def ns_loss_and_grads(v, u_pos, u_neg):
                t = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (v, u_pos, u_neg)]
                loss = (-torch.nn.functional.logsigmoid(t[0] @ t[1])
                        - torch.nn.functional.logsigmoid(-(t[2] @ t[0])).sum())
                loss.backward()
                return loss.item(), t[0].grad.numpy(), t[1].grad.numpy(), t[2].grad.numpy()


            def sgd_step(v, u_pos, u_neg, lr):
                _, gv, gp, gn = ns_loss_and_grads(v, u_pos, u_neg)
                return v - lr * gv, u_pos - lr * gp, u_neg - lr * gn
            """,
        "analogy": """
            from llmcourse.embeddings import WordVectors as _WV

            def analogy(a, b, c, vocab, vectors, k):
                return [w for w, _ in _WV(list(vocab), np.asarray(vectors, dtype=float)).analogy(a, b, c, k)]
            """,
        "sentence_vector": """
            _course = embeddings.sentence_vector

            def sentence_vector(words, vocab, vectors):
                return _course(embeddings.WordVectors(list(vocab), np.asarray(vectors, dtype=float)), words)
            """,
    }, tmp_path)
    cheated = {"test_cosine", "test_nearest", "test_lookup_by_matmul", "test_skipgram_pairs",
               "test_ns_loss_and_grads", "test_analogy", "test_sentence_vector"}
    for test_id in cheated - {"test_lookup_by_matmul"}:
        _assert_zero(results, test_id, WRITE_IT, visible=True)
    _assert_zero(results, "test_cosine", "embeddings.cosine_similarity")
    _assert_zero(results, "test_nearest", "embeddings.WordVectors")
    _assert_zero(results, "test_ns_loss_and_grads", "torch")
    _assert_zero(results, "test_lookup_by_matmul", "indexes the table with the ids", visible=True)
    assert set(results) == cheated


@pytest.mark.slow
def test_exercise_4_dot_product_instead_of_cosine_fails_visibly(tmp_path):
    results = _grade_with("04_embeddings", {
        "nearest": """
            def nearest(word, vocab, vectors, k):
                vectors = np.asarray(vectors, dtype=float)
                i = vocab.index(word)
                sims = vectors @ vectors[i]
                sims[i] = -np.inf
                return [vocab[j] for j in np.argsort(-sims)[:k]]
            """,
        "lookup_by_matmul": """
            def lookup_by_matmul(ids, table):
                table = np.asarray(table, dtype=float)
                rows = []
                for i in ids:
                    rows.append(table[i])
                return np.eye(len(ids)) @ np.array(rows)
            """,
    }, tmp_path)
    _assert_zero(results, "test_nearest", "very different lengths", visible=True)
    _assert_zero(results, "test_lookup_by_matmul", "indexes the table", visible=True)
    _assert_rest_pass(results, {"test_nearest", "test_lookup_by_matmul"})


@pytest.mark.slow
def test_exercise_5_calling_the_reference(tmp_path):
    results = _grade_with("05_attention", {
        "masked_softmax": """
            import llmcourse.attention as _att

            def masked_softmax(scores, mask=None):
                if mask is not None:
                    scores = scores.masked_fill(~mask, float("-inf"))
                return torch.softmax(scores, dim=-1) + 0 * _att.causal_mask(1).sum()
            """,
        "causal_mask": """
            def causal_mask(n_queries, n_keys=None):
                return attention.causal_mask(n_queries, n_keys)
            """,
        "split_heads": """
            from llmcourse.attention import split_heads as _split

            def split_heads(x, n_head):
                return _split(x, n_head)
            """,
        "merge_heads": """
            def merge_heads(x):
                return getattr(attention, "merge_heads")(x).clone()
            """,
        "attention_head": """
            def attention_head(x, w_q, w_k, w_v):
                return F.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, is_causal=True)
            """,
        "multi_head_attention": """
            def _module(d_model, n_head):
                return attention.CausalSelfAttention(d_model, n_head, bias=False)

            def multi_head_attention(x, w_q, w_k, w_v, w_o, n_head):
                m = _module(x.shape[-1], n_head).to(x.dtype)
                with torch.no_grad():
                    m.qkv.weight.copy_(torch.cat([w_q.T, w_k.T, w_v.T]))
                    m.proj.weight.copy_(w_o.T)
                    return m(x)
            """,
    }, tmp_path)
    cheated = {"test_masked_softmax", "test_causal_mask",
               "test_split_heads", "test_merge_heads", "test_attention_head",
               "test_multi_head_attention"}
    for test_id in cheated:
        _assert_zero(results, test_id, WRITE_IT, visible=True)
    _assert_zero(results, "test_attention_head", "scaled_dot_product_attention")
    _assert_zero(results, "test_multi_head_attention", "in _module, which it calls")
    _assert_rest_pass(results, cheated)


@pytest.mark.slow
def test_exercise_6_usual_mistakes_fail_visibly_and_the_reference_gives_zero(tmp_path):
    results = _grade_with("06_transformer", {
        "layer_norm": """
            def layer_norm(x, gain, bias, eps=1e-5):
                mean = x.mean()
                var = ((x - mean) ** 2).mean()
                return (x - mean) / torch.sqrt(var + eps) * gain + bias
            """,
        "embed": """
            def embed(ids, tok_table, pos_table):
                return F.embedding(ids, tok_table) + pos_table[: ids.shape[1]]
            """,
        "gpt_parameter_count": """
            def gpt_parameter_count(vocab_size, block_size, n_layer, d_model, mlp_ratio=4):
                d, V = d_model, vocab_size
                per_block = 2 * d + 4 * d * d + 2 * 4 * d * d
                return (V + block_size) * d + n_layer * per_block + d + d * V
            """,
        "train_step": """
            def train_step(model, optimizer, x, y):
                logits = model(x)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
                loss.backward()
                optimizer.step()
                return loss.item()
            """,
    }, tmp_path)
    _assert_zero(results, "test_layer_norm", "very different scales", visible=True)
    _assert_zero(results, "test_embed", WRITE_IT, "F.embedding", visible=True)
    _assert_zero(results, "test_gpt_parameter_count", "mlp_ratio=2", visible=True)
    _assert_zero(results, "test_train_step", "old gradients", visible=True)
    # a layer norm that mixes positions and a step that keeps old gradients break the model
    # and the training built on them (Parts 9 and 10): not asserted either way
    _assert_rest_pass(results, {"test_layer_norm", "test_embed", "test_gpt_parameter_count",
                                "test_train_step"} | EX6_BUILT_ON)


@pytest.mark.slow
def test_exercise_6_torch_layer_norm_and_the_course_count(tmp_path):
    results = _grade_with("06_transformer", {
        "layer_norm": """
            def layer_norm(x, gain, bias, eps=1e-5):
                return F.layer_norm(x, x.shape[-1:], gain, bias, eps)
            """,
        "gpt_parameter_count": """
            def gpt_parameter_count(vocab_size, block_size, n_layer, d_model, mlp_ratio=4):
                cfg = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                                d_model=d_model, n_head=1, mlp_ratio=mlp_ratio)
                return count_parameters(GPT(cfg))["total"]
            """,
    }, tmp_path)
    _assert_zero(results, "test_layer_norm", WRITE_IT, "layer_norm", visible=True)
    _assert_zero(results, "test_gpt_parameter_count", WRITE_IT, "llmcourse.gpt", visible=True)
    _assert_rest_pass(results, {"test_layer_norm", "test_gpt_parameter_count"})


#: Exercise 6's parts built on the earlier ones: the model (Part 9) calls Parts 1 to 5 and its
#: training (Part 10) trains that model with Part 8's step, so a slip there may fail them too.
EX6_BUILT_ON = {"test_gpt_forward", "test_train_gpt"}


def _code(*pieces):
    return "\n".join(textwrap.dedent(piece).strip("\n") for piece in pieces)


def _tiny_gpt(forward, init_extra="", before=""):
    """Exercise 6's TinyGPT cell as the source has it, with another body of ``forward``, lines
    added at the end of ``__init__`` and code before the class."""
    source = nbformat.read(next(p for p in EXERCISE_SOURCES if p.stem == "06_transformer"),
                           as_version=4)
    cell = next(c.source for c in source.cells if _meta(c).get("grade_id") == "gpt_forward")
    head, rest = cell.split("        ### BEGIN SOLUTION\n")
    _, tail = rest.split("        ### END SOLUTION")
    last_init_line = "        self.W_head = weight(d, vocab_size)\n"
    assert last_init_line in head
    if init_extra:
        head = head.replace(last_init_line,
                            last_init_line + textwrap.indent(_code(init_extra), " " * 8) + "\n")
    cell = head + textwrap.indent(_code(forward), " " * 8) + tail
    return (_code(before) + "\n\n\n" + cell) if before else cell


# the blocks as the source's forward runs them
_EX6_BLOCKS = """
    for p in self.blocks:
        x = block_forward(
            x, lambda t: layer_norm(t, p["ln1_gain"], p["ln1_bias"]),
            lambda t: multi_head_attention(t, p["w_q"], p["w_k"], p["w_v"], p["w_o"],
                                           self.config.n_head),
            lambda t: layer_norm(t, p["ln2_gain"], p["ln2_bias"]),
            lambda t: mlp_forward(t, p["W1"], p["b1"], p["W2"], p["b2"]))
    """
_EX6_EMBED = "x = embed(ids, self.tok_table, self.pos_table)"
_EX6_HEAD = "return layer_norm(x, self.lnf_gain, self.lnf_bias) @ self.W_head"


@pytest.mark.slow
def test_exercise_6_the_course_block_torch_attention_and_the_course_batches_give_zero(tmp_path):
    results = _grade_with("06_transformer", {
        "multi_head_attention": """
            def multi_head_attention(x, w_q, w_k, w_v, w_o, n_head):
                d_model, T = x.shape[-1], x.shape[1]
                m = nn.MultiheadAttention(d_model, n_head, bias=False, batch_first=True).to(x.dtype)
                with torch.no_grad():
                    m.in_proj_weight.copy_(torch.cat([w_q.T, w_k.T, w_v.T]))
                    m.out_proj.weight.copy_(w_o.T)
                future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
                return m(x, x, x, attn_mask=future, need_weights=False)[0]
            """,
        "gpt_forward": _tiny_gpt(init_extra="""
            config = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer,
                               n_head=n_head, d_model=d_model, dropout=0.0)
            self.course_blocks = nn.ModuleList(Block(config) for _ in range(n_layer))
            """, forward=_code(_EX6_EMBED, """
            for block in self.course_blocks:
                x = block(x)
            """, _EX6_HEAD)),
        "train_gpt": """
            from llmcourse.train import get_batch as _batch

            def train_gpt(model, optimizer, ids, starts, steps, batch_size, block_size,
                          generator=None):
                return [train_step(model, optimizer,
                                   *_batch(ids, batch_size, block_size, generator, starts=starts))
                        for _ in range(steps)]
            """,
    }, tmp_path)
    cheated = {"test_multi_head_attention", "test_gpt_forward", "test_train_gpt"}
    for test_id in cheated:
        _assert_zero(results, test_id, WRITE_IT, visible=True)
    _assert_zero(results, "test_multi_head_attention", "MultiheadAttention")
    _assert_zero(results, "test_gpt_forward", "__init__ uses", "llmcourse.gpt")
    _assert_zero(results, "test_train_gpt", "get_batch")
    _assert_rest_pass(results, cheated)


@pytest.mark.slow
def test_exercise_6_torch_transformer_layers_and_windows_from_anywhere(tmp_path):
    results = _grade_with("06_transformer", {
        "multi_head_attention": """
            def multi_head_attention(x, w_q, w_k, w_v, w_o, n_head):
                B, T, d = x.shape
                q, k, v = [(x @ w).view(B, T, n_head, d // n_head).transpose(1, 2)
                           for w in (w_q, w_k, w_v)]
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                return y.transpose(1, 2).reshape(B, T, d) @ w_o
            """,
        "gpt_forward": _tiny_gpt(init_extra="""
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(d_model, n_head, 4 * d_model, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
                for _ in range(n_layer))
            """, forward=_code(_EX6_EMBED, """
            mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
            for layer in self.layers:
                x = layer(x, src_mask=mask, is_causal=True)
            """, _EX6_HEAD)),
        # the learner's own get_batch (Part 7) draws windows anywhere, validation included
        "train_gpt": """
            def train_gpt(model, optimizer, ids, starts, steps, batch_size, block_size,
                          generator=None):
                return [train_step(model, optimizer, *get_batch(ids, batch_size, block_size,
                                                                generator))
                        for _ in range(steps)]
            """,
    }, tmp_path)
    _assert_zero(results, "test_multi_head_attention", WRITE_IT, "scaled_dot_product_attention",
                 visible=True)
    _assert_zero(results, "test_gpt_forward", WRITE_IT, "TransformerEncoderLayer",
                 "torch.nn.modules.transformer", visible=True)
    _assert_zero(results, "test_train_gpt", "not at one of the allowed starts", visible=True)
    _assert_rest_pass(results, {"test_multi_head_attention", "test_gpt_forward",
                                "test_train_gpt"})


_EX6_NO_MASK = """
    def attend(x, w_q, w_k, w_v, w_o, n_head):      # attention written again, without the mask
        B, T, d = x.shape
        q, k, v = [(x @ w).view(B, T, n_head, d // n_head).transpose(1, 2)
                   for w in (w_q, w_k, w_v)]
        weights = torch.softmax(q @ k.transpose(-2, -1) / (d // n_head) ** 0.5, dim=-1)
        return (weights @ v).transpose(1, 2).reshape(B, T, d) @ w_o
    """

# each slip of the forward pass, the phrase its visible failure names, and a slip of another
# new part graded in the same run (grade id, code, phrase)
EX6_FORWARD_SLIPS = {
    "no_positions": (
        _code("x = self.tok_table[ids]                  # the tokens only, no positions",
              _EX6_BLOCKS, _EX6_HEAD),
        "", "does not know where a token sits",
        ("multi_head_attention", """
            def multi_head_attention(x, w_q, w_k, w_v, w_o, n_head):
                B, T, d = x.shape
                q, k, v = [(x @ w).view(B, T, n_head, d // n_head).transpose(1, 2)
                           for w in (w_q, w_k, w_v)]
                future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
                scores = (q @ k.transpose(-2, -1) / d ** 0.5).masked_fill(future, float("-inf"))
                return (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, T, d) @ w_o
            """, "with 2 heads")),                   # scaled by sqrt(d_model), not sqrt(d_head)
    "no_final_norm": (
        _code(_EX6_EMBED, _EX6_BLOCKS, "return x @ self.W_head"),
        "", "skip the final layer norm",
        ("train_gpt", """
            def train_gpt(model, optimizer, ids, starts, steps, batch_size, block_size,
                          generator=None):
                losses = []
                for _ in range(steps):
                    s = starts[torch.randint(0, len(starts), (batch_size,), generator=generator)]
                    x = ids[s[:, None] + torch.arange(block_size)]
                    losses.append(train_step(model, optimizer, x, x))   # targets not shifted
                return losses
            """, "the bigram table after 5 steps")),
    "probabilities": (
        _code(_EX6_EMBED, _EX6_BLOCKS,
              "return torch.softmax(layer_norm(x, self.lnf_gain, self.lnf_bias) @ self.W_head, "
              "dim=-1)"),
        "", "returns probabilities", None),
    "not_causal": (
        _code(_EX6_EMBED, _EX6_BLOCKS.replace("multi_head_attention(", "attend("), _EX6_HEAD),
        _EX6_NO_MASK, "after changing the tokens at positions 5..7", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("slip", list(EX6_FORWARD_SLIPS))
def test_exercise_6_slips_of_the_forward_pass_fail_visibly(tmp_path, slip):
    forward, before, phrase, other = EX6_FORWARD_SLIPS[slip]
    replacements = {"gpt_forward": _tiny_gpt(forward, before=before)}
    cheated = {"test_gpt_forward"}
    if other:
        replacements[other[0]] = other[1]
        cheated.add(f"test_{other[0]}")
    results = _grade_with("06_transformer", replacements, tmp_path)
    _assert_zero(results, "test_gpt_forward", phrase, visible=True)
    if other:
        _assert_zero(results, f"test_{other[0]}", other[2], visible=True)
    _assert_rest_pass(results, cheated | EX6_BUILT_ON)


@pytest.mark.slow
def test_exercise_7_and_8_reference_and_eval(tmp_path):
    results = _grade_with("07_generation", {
        "softmax_with_temperature": """
            import torch

            def softmax_with_temperature(logits, temperature):
                return torch.softmax(torch.tensor(logits, dtype=torch.float64) / temperature, -1).numpy()
            """,
        "top_k_filter": """
            def top_k_filter(logits, k):
                return sampling.top_k_filter(np.asarray(logits, dtype=float), k).numpy()
            """,
        "sample_next": """
            def sample_next(logits, rng, temperature=1.0, top_k=None, top_p=None):
                return sampling.sample_next_token(logits, temperature, top_k, top_p)
            """,
        "sample_generate": """
            def sample_generate(next_logits, prompt_ids, max_new_tokens, block_size, rng,
                                temperature=1.0, top_k=None, top_p=None, stop_id=None):
                return generate(next_logits, prompt_ids, max_new_tokens, block_size, stop_id)
            """,
    }, tmp_path)
    _assert_zero(results, "test_softmax_with_temperature", WRITE_IT, "torch", visible=True)
    _assert_zero(results, "test_top_k_filter", WRITE_IT, "llmcourse.sampling", visible=True)
    _assert_zero(results, "test_sample_next", WRITE_IT, "llmcourse.sampling", visible=True)
    _assert_zero(results, "test_sample_generate", visible=True)  # greedy only: other tokens
    cheated = {"test_softmax_with_temperature", "test_top_k_filter", "test_sample_next",
               "test_sample_generate"}
    _assert_rest_pass(results, cheated)

    results = _grade_with("08_assistant", {
        "safe_calculate": """
            import ast


            def safe_calculate(expression):
                \"\"\"Only digits, operators and parentheses get through; then it is safe.\"\"\"
                if len(expression) > 100 or not set(expression) <= set("0123456789+-*/(). "):
                    raise ValueError("not allowed")
                if "**" in expression or "//" in expression:
                    raise ValueError("not allowed")
                try:
                    return eval(expression, {"__builtins__": {}})
                except ZeroDivisionError:
                    raise ValueError("division by zero") from None
                except SyntaxError:
                    raise ValueError("not a valid expression") from None
            """,
        "parse_tool_call": """
            def parse_tool_call(text):
                return chat.parse_tool_call(text)[1]
            """,
        "training_targets": """
            def training_targets(ids, mask):  # the mask of the token read, not of the one predicted
                return list(ids[:-1]), [t if m else -100 for t, m in zip(ids[1:], mask[:-1])]
            """,
        "finetune_step": """
            import torch
            from torch.nn import functional as F
            from llmcourse import sft as _sft


            def finetune_step(model, optimizer, ids, mask):
                x, y = _sft._batch([(ids, mask)], 0)
                loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=-100)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                return loss.item()
            """,
    }, tmp_path)
    _assert_zero(results, "test_safe_calculate", NO_EXEC, "eval", visible=True)
    _assert_zero(results, "test_parse_tool_call", WRITE_IT, "llmcourse.chat", visible=True)
    _assert_zero(results, "test_training_targets", "[0, 0, 1, 1, 1]", visible=True)
    _assert_zero(results, "test_finetune_step", "_sft._batch", visible=True)
    cheated = {"test_safe_calculate", "test_parse_tool_call", "test_training_targets",
               "test_finetune_step"}
    _assert_rest_pass(results, cheated)
