"""Tests for llmcourse.bpe: the fast trainer learns the reference trainer's merges, encoding gives
exactly tiktoken's ids, decoding inverts encoding, and bad input gets clear errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmcourse.bpe import (
    GPT4_SPLIT_PATTERN,
    BPETokenizer,
    count_pairs,
    merge_pair,
    split_text,
    token_viewer,
    tokens_html,
    train_bpe,
    train_bpe_recount,
)

EOT = "<|endoftext|>"

UNICODE_TEXT = (
    "Café, naïve, déjà vu, Ångström, Straße, smörgåsbord. "
    "Привет, мир! Γειά σου Κόσμε. שלום עולם. مرحبا بالعالم. नमस्ते दुनिया। "
    "你好，世界！こんにちは世界。안녕하세요 세계. "
    "Emoji: 😀😃😄 🤖🚀 👩‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ 1️⃣ "
    "Combining: e\u0301 a\u0308 n\u0303. Zero width:\u200b\u200d. Tabs\tand\r\nnewlines\n\n\n"
    "Numbers 1234567 ３４５ ½ ⅓ 𝟙𝟚𝟛; maths ∀x∈ℝ: x²≥0; spaces   \u00a0\u2003 end.  "
)


@pytest.fixture(scope="module")
def tok1024(shakespeare: str) -> BPETokenizer:
    return train_bpe(shakespeare, 1024, special_tokens=[EOT])


@pytest.fixture(scope="module")
def tok_unicode(shakespeare: str) -> BPETokenizer:
    """Trained on Shakespeare plus Unicode text, so that merges join bytes of multi-byte
    characters too."""
    return train_bpe(shakespeare[:50_000] + UNICODE_TEXT * 20, 700)


# -- building blocks ------------------------------------------------------------------------------

def test_count_pairs_and_merge_pair():
    assert count_pairs([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert count_pairs([7]) == {}
    assert count_pairs([1, 2], {(1, 2): 3}, weight=2) == {(1, 2): 5}
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge_pair([5, 5, 5], (5, 5), 6) == [6, 5]
    assert merge_pair([5, 5, 5, 5], (5, 5), 6) == [6, 6]
    assert merge_pair([], (1, 2), 3) == []


def test_split_text_gpt4_pattern():
    assert split_text("Hello world!!") == ["Hello", " world", "!!"]
    assert split_text("I'm 12345 ok   now") == ["I", "'m", " ", "123", "45", " ok", "  ", " now"]
    assert split_text("a<|endoftext|>b", special_tokens=[EOT]) == ["a", "b"]
    assert split_text("ab cd", pattern=None) == ["ab cd"]
    # the pattern is cl100k_base's: it cuts text exactly like tiktoken's regex
    import regex
    assert regex.findall(GPT4_SPLIT_PATTERN, UNICODE_TEXT) == split_text(UNICODE_TEXT)


def test_step_by_step_example():
    """The classic example 'aaabdaaabac': Z=aa, Y=ab, X=ZY (ids 256=aa, 257=ab, 258=256+257)."""
    tok = train_bpe("aaabdaaabac", 259, pattern=None)
    a, b = ord("a"), ord("b")
    assert tok.merges == {(a, a): 256, (a, b): 257, (256, 257): 258}
    assert tok.encode("aaabdaaabac") == [258, ord("d"), 258, a, ord("c")]
    assert tok.vocab[258] == b"aaab"


# -- fast trainer == reference trainer ------------------------------------------------------------

def test_fast_equals_recount_on_shakespeare(shakespeare):
    text = shakespeare[:30_000]
    fast = train_bpe(text, 420)
    slow = train_bpe_recount(text, 420)
    assert list(fast.merges.items()) == list(slow.merges.items())
    assert fast.vocab == slow.vocab


def test_fast_equals_recount_without_pattern_and_with_specials(shakespeare):
    text = shakespeare[:5_000].replace("\n\n", EOT)
    for kwargs in ({"pattern": None}, {"special_tokens": [EOT]},
                   {"pattern": None, "special_tokens": [EOT]}):
        fast = train_bpe(text, 330, **kwargs)
        slow = train_bpe_recount(text, 330, **kwargs)
        assert list(fast.merges) == list(slow.merges), kwargs
        assert fast.special_tokens == slow.special_tokens


def test_fast_equals_recount_on_unicode():
    fast = train_bpe(UNICODE_TEXT * 3, 400)
    slow = train_bpe_recount(UNICODE_TEXT * 3, 400)
    assert list(fast.merges) == list(slow.merges)


small_texts = st.text(alphabet=st.sampled_from("aab ba\né😀"), min_size=2, max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=small_texts, extra=st.integers(1, 30), split=st.booleans())
def test_fast_equals_recount_on_random_text(text, extra, split):
    """Small alphabets make ties, overlapping pairs ('aaa') and repeated bytes likely."""
    pattern = GPT4_SPLIT_PATTERN if split else None
    try:
        slow = train_bpe_recount(text, 256 + extra, pattern=pattern)
    except ValueError as err:  # the text allows fewer merges: both must say so
        with pytest.raises(ValueError) as err2:
            train_bpe(text, 256 + extra, pattern=pattern)
        assert str(err2.value) == str(err)
        return
    fast = train_bpe(text, 256 + extra, pattern=pattern)
    assert list(fast.merges) == list(slow.merges)
    assert len(set(fast.vocab.values())) == len(fast.vocab)


def test_ties_go_to_the_smallest_pair():
    # 'ab' and 'cd' occur twice each: (97, 98) < (99, 100), so 'ab' is merged first
    tok = train_bpe("cdab cdab", 257, pattern=None)
    assert list(tok.merges) == [(ord("a"), ord("b"))]


def test_tokens_are_distinct_bytes(tok1024):
    merged = [tok1024.vocab[i] for i in range(256, 256 + len(tok1024.merges))]
    assert len(set(merged)) == len(merged)
    assert all(len(t) >= 2 for t in merged)
    assert list(tok1024.merges.values()) == list(range(256, 1023))
    assert len(tok1024.vocab) == tok1024.vocab_size == 1024
    assert tok1024.special_tokens == {EOT: 1023}


def test_tokens_stay_distinct_on_tricky_text():
    """'xab' can be spelled 'x'+'ab' or 'xa'+'b': only one of them may become a token."""
    text = "xab " * 5 + "xa" * 4 + " " + "ab" * 3 + " xab" * 3
    for trainer in (train_bpe, train_bpe_recount):
        tok = trainer(text, 270, pattern=None)
        merged = [tok.vocab[i] for i in range(256, len(tok.vocab))]
        assert len(set(merged)) == len(merged)


# -- encoding == tiktoken -------------------------------------------------------------------------

def test_encode_equals_tiktoken_on_shakespeare(shakespeare, tok1024):
    enc = tok1024.to_tiktoken()
    ids = tok1024.encode(shakespeare)
    assert ids == enc.encode(shakespeare)
    assert len(ids) < len(shakespeare.encode()) / 2  # it compresses
    assert tok1024.decode(ids) == shakespeare


def test_encode_equals_tiktoken_on_unicode(tok1024, tok_unicode):
    for tok in (tok1024, tok_unicode):
        enc = tok.to_tiktoken()
        assert tok.encode(UNICODE_TEXT) == enc.encode(UNICODE_TEXT)
        assert tok.decode(tok.encode(UNICODE_TEXT)) == UNICODE_TEXT
    # tok_unicode learned merges inside multi-byte characters
    assert any(max(tok_unicode.vocab[i]) >= 0x80 for i in tok_unicode.merges.values())


def test_encode_without_pattern_equals_tiktoken(shakespeare):
    """pattern=None: the whole text is one chunk; long chunks take the heap-based path."""
    tok = train_bpe(shakespeare[:20_000], 500, pattern=None)
    enc = tok.to_tiktoken()
    text = shakespeare[20_000:30_000]
    assert tok.encode(text) == enc.encode(text)
    short = [text[i:i + 60] for i in range(0, 3000, 60)]
    for piece in short:
        data = piece.encode()
        assert tok._encode_chunk(data) == tok._encode_long_chunk(data) == enc.encode(piece)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=80))
def test_encode_equals_tiktoken_on_random_strings(tok_unicode, text):
    enc = tok_unicode.to_tiktoken()
    ids = tok_unicode.encode(text, disallowed_special=())
    assert ids == enc.encode(text, disallowed_special=())
    assert tok_unicode.decode(ids) == text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=small_texts, extra=st.integers(1, 25), text=small_texts | st.text(max_size=40),
       split=st.booleans())
def test_random_tokenizers_encode_like_tiktoken(train, extra, text, split):
    """Tokenizers trained on tiny random texts have odd vocabularies (tokens that can be spelled
    by several pairs, whole chunks that are tokens): encoding must still match tiktoken."""
    pattern = GPT4_SPLIT_PATTERN if split else None
    try:
        tok = train_bpe(train, 256 + extra, pattern=pattern)
    except ValueError:
        tok = BPETokenizer([], pattern=pattern)
    assert tok.encode(text) == tok.to_tiktoken().encode(text)
    assert tok.encode(train) == tok.to_tiktoken().encode(train)
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(text=st.text())
def test_round_trip(tok1024, text):
    assert tok1024.decode(tok1024.encode(text, disallowed_special=())) == text


def test_decode_invalid_utf8_uses_replacement(tok1024):
    emoji = "🤖".encode()  # 4 bytes
    assert tok1024.decode(list(emoji)) == "🤖"
    assert tok1024.decode(list(emoji[:2])) == "\ufffd"
    assert tok1024.decode([0xFF, ord("a")]) == "\ufffda"
    assert tok1024.decode([0xFF]) == tok1024.to_tiktoken().decode([0xFF])
    assert tok1024.decode_bytes([0xFF, ord("a")]) == b"\xffa"


def test_lone_surrogates_are_replaced_like_tiktoken(tok1024):
    text = "a\ud800b"
    assert tok1024.encode(text) == tok1024.to_tiktoken().encode(text)
    assert tok1024.decode(tok1024.encode(text)) == "a\ufffdb"


# -- special tokens -------------------------------------------------------------------------------

def test_special_tokens_like_tiktoken(tok1024):
    enc = tok1024.to_tiktoken()
    text = f"First Citizen:{EOT}Speak, speak.{EOT}{EOT}x"
    ids = tok1024.encode(text, allowed_special="all")
    assert ids == enc.encode(text, allowed_special="all")
    assert ids.count(1023) == 3
    assert tok1024.decode(ids) == text
    assert tok1024.encode(text, allowed_special={EOT}) == ids
    assert tok1024.encode(text, disallowed_special=()) == enc.encode(text, disallowed_special=())
    assert 1023 not in tok1024.encode(text, disallowed_special=())
    with pytest.raises(ValueError, match="disallowed"):
        tok1024.encode(text)
    with pytest.raises(ValueError):
        enc.encode(text)
    with pytest.raises(ValueError, match="allowed_special"):
        tok1024.encode(text, allowed_special={"<|nope|>"})


def test_special_tokens_are_never_merged(shakespeare):
    text = EOT.join(shakespeare[:20_000].split("\n\n"))
    tok = train_bpe(text, 600, special_tokens=[EOT])
    assert tok.special_tokens == {EOT: 599}
    merged = [tok.vocab[i] for i in tok.merges.values()]
    # "<|endoftext|>" occurs over a hundred times, but "<" and "|" (which occur nowhere else in
    # Shakespeare) are in no merged token
    assert text.count(EOT) > 100
    assert not any(b"<" in t or b"|" in t for t in merged)
    assert list(tok.merges) == list(train_bpe_recount(text, 600, special_tokens=[EOT]).merges)


# -- saving, loading, errors ----------------------------------------------------------------------

def test_save_and_load(tmp_path, tok1024, shakespeare):
    path = tmp_path / "tok.json"
    tok1024.save(path)
    back = BPETokenizer.load(path)
    assert back.merges == tok1024.merges
    assert back.vocab == tok1024.vocab
    assert back.pattern == tok1024.pattern
    assert back.special_tokens == tok1024.special_tokens
    assert back.encode(shakespeare[:5000]) == tok1024.encode(shakespeare[:5000])
    none = train_bpe("hello hello", 260, pattern=None)
    none.save(path)
    assert BPETokenizer.load(path).pattern is None


@pytest.mark.parametrize("content, message", [
    ("not json", "could not be read"),
    ("[1, 2]", "format 'llmcourse-bpe'"),
    (json.dumps({"format": "llmcourse-bpe", "version": 9}), "version 1"),
    (json.dumps({"format": "llmcourse-bpe", "version": 1, "pattern": None, "merges": [[1]]}),
     "list of \\[id, id\\] pairs"),
    (json.dumps({"format": "llmcourse-bpe", "version": 1, "pattern": None,
                 "merges": [[97, 98], [400, 1]]}), "ids 0..256"),
    (json.dumps({"format": "llmcourse-bpe", "version": 1, "pattern": "(", "merges": []}),
     "valid regular expression"),
    (json.dumps({"format": "llmcourse-bpe", "version": 1, "pattern": None, "merges": [],
                 "special_tokens": {"<|x|>": 7}}), "follow the merges"),
])
def test_load_corrupt_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        BPETokenizer.load(path)


def test_clear_errors():
    with pytest.raises(ValueError, match="at least 256.*got 100"):
        train_bpe("hello", 100)
    with pytest.raises(ValueError, match="at least 256.*1 special.*got 256"):
        train_bpe("hello", 256, special_tokens=[EOT])
    with pytest.raises(ValueError, match="must not be empty"):
        train_bpe("", 300)
    with pytest.raises(ValueError, match="at most 260"):  # 'hello': he, hel, hell, hello
        train_bpe("hello", 300)
    with pytest.raises(ValueError, match="at most 260"):
        train_bpe_recount("hello", 300)
    with pytest.raises(ValueError, match="valid regular expression, got '\\[a-'"):
        train_bpe("hello", 260, pattern="[a-")
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        train_bpe(b"hello", 260)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        train_bpe("hello", 260.0)
    tok = BPETokenizer([])
    with pytest.raises(ValueError, match="0..255, got 256"):
        tok.decode([1, 256])
    with pytest.raises(ValueError, match="0..255, got 256"):
        tok.decode_bytes(iter([1, 256]))
    assert tok.decode(iter([104, 105])) == "hi"
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode(["a"])
    with pytest.raises(ValueError, match="already has"):
        BPETokenizer([(97, 98), (97, 98)])


def test_vocab_256_means_bytes_only():
    tok = train_bpe("hello", 256)
    assert tok.merges == {}
    assert tok.encode("hé") == list("hé".encode())


# -- the token viewer -----------------------------------------------------------------------------

def test_token_viewer_follows_the_text(tok1024):
    viewer = token_viewer(tok1024, "hello")
    assert viewer.ids == tok1024.encode("hello")
    viewer.set_text("To be, or not to be 🤖")
    assert viewer.ids == tok1024.encode("To be, or not to be 🤖")
    assert "".join(viewer.tokens).startswith("To be, or not to be ")
    assert viewer.output.value == tokens_html(tok1024, "To be, or not to be 🤖")
    assert viewer.output.value.count("display:inline-block") == len(viewer.ids)
    assert "\\xf0" in viewer.output.value  # the emoji's first bytes, shown as bytes
    viewer.text_box.value = "strawberry"  # typing in the box does the same
    assert viewer.ids == tok1024.encode("strawberry")


def test_on_merge_reports_every_merge():
    text = "the cat in the hat sat on the mat"
    for trainer in (train_bpe, train_bpe_recount):
        seen = []
        tok = trainer(text, 262, pattern=None, on_merge=lambda k, pair: seen.append((k, pair)))
        assert seen == [(k, pair) for k, pair in enumerate(tok.merges)]
