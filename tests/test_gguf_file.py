"""Tests for llmcourse.gguf_file: the course's GGUF reader gives what the gguf package reads."""

from __future__ import annotations

import numpy as np
import pytest

from llmcourse.gguf_file import read_gguf


@pytest.fixture(scope="module")
def both():
    gguf = pytest.importorskip("gguf", reason="the reference reader: pip install gguf")
    from llmcourse.llama import smollm2_path

    try:
        path = smollm2_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    return read_gguf(path), gguf.GGUFReader(str(path))


def test_metadata_equals_gguf_reader(both):
    ours, ref = both
    assert ours.version == 3
    assert set(ours.metadata) == {k for k in ref.fields if not k.startswith("GGUF.")}
    for key, value in ours.metadata.items():
        expected = ref.fields[key].contents()
        if isinstance(value, float):
            assert value == pytest.approx(expected, rel=1e-7), key
        else:
            assert value == expected, key
    assert len(ours.metadata["tokenizer.ggml.tokens"]) == 49152
    assert len(ours.metadata["tokenizer.ggml.merges"]) == 48900


def test_tensors_equal_gguf_reader(both):
    ours, ref = both
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    for a, b in zip(ours.tensors, ref.tensors):
        assert a.kind == b.tensor_type.name, a.name
        assert a.shape == tuple(int(d) for d in reversed(b.shape)), a.name
        assert np.array_equal(a.data, np.asarray(b.data).view(np.uint8)), a.name


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ValueError, match="not a GGUF file.*expected b'GGUF'"):
        read_gguf(bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_gguf(tmp_path / "missing.gguf")
    truncated = tmp_path / "short.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="ends early"):
        read_gguf(truncated)
