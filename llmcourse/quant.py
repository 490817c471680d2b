"""Quantisation: store each weight in 4 or 8 bits instead of 32 (introduced in Chapter 9).

A trained model's weights are float numbers, 4 bytes each in float32: SmolLM2-135M would need
540 MB. Files such as GGUF (the format of llama.cpp) store most weights *quantised*: the numbers
are cut into blocks of 32 neighbours along a row, and each block keeps a scale (and sometimes an
offset) in 16-bit floating point plus one small integer per number. Reading a weight back
(*dequantising*) is one multiply-add. Two block formats of ggml (``ggml-common.h``) are used here:

``Q8_0`` (34 bytes per 32 numbers, 8.5 bits each)
    ``d`` (float16, 2 bytes), then 32 signed bytes ``q`` (int8). Number ``j`` is ``d * q[j]``.
    The quantiser picks ``d = max|x| / 127`` and rounds, so the error is at most ``d / 2``.

``Q4_1`` (20 bytes per 32 numbers, 5 bits each)
    ``d`` (float16), ``m`` (float16), then 16 bytes that hold 32 four-bit integers ``q`` in
    0..15: byte ``j`` holds number ``j`` in its low four bits and number ``j + 16`` in its high
    four bits. Number ``j`` is ``d * q[j] + m``. The quantiser picks ``m = min(x)`` and
    ``d = (max(x) - min(x)) / 15``: 16 evenly spaced levels from the smallest number of the block
    to the largest, the error at most ``d / 2``.

The blocks of a row follow each other, so a weight matrix of shape ``(rows, cols)`` is stored as
``(rows, cols // 32 * bytes_per_block)`` bytes. The functions below dequantise such arrays with
NumPy, in float32 and in the same order of operations as ``gguf.quants.dequantize`` (the reference
the tests compare with, bit for bit); :func:`quantize_q4_1` goes the other way, so that a chapter
can measure the error that 4 bits introduce.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BLOCK_SIZE", "BLOCK_BYTES", "dequantize_q8_0", "dequantize_q4_1", "quantize_q4_1",
           "dequantize"]

#: Numbers per block in both formats.
BLOCK_SIZE = 32
#: Bytes per block of 32 numbers, for each storage type.
BLOCK_BYTES = {"Q8_0": 2 + 32, "Q4_1": 2 + 2 + 16}


def _blocks(raw: np.ndarray, kind: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Bytes ``(..., n_bytes)`` as blocks ``(n_blocks, block_bytes)``, and the output shape."""
    if not isinstance(raw, np.ndarray) or raw.dtype != np.uint8:
        raise TypeError(f"{kind} data must be a NumPy array of bytes (uint8), got "
                        f"{getattr(raw, 'dtype', type(raw).__name__)}")
    size = BLOCK_BYTES[kind]
    if raw.ndim == 0 or raw.shape[-1] % size != 0:
        raise ValueError(f"{kind} rows must be a whole number of {size}-byte blocks, got shape "
                         f"{raw.shape}")
    out_shape = raw.shape[:-1] + (raw.shape[-1] // size * BLOCK_SIZE,)
    return np.ascontiguousarray(raw).reshape(-1, size), out_shape


def dequantize_q8_0(raw: np.ndarray) -> np.ndarray:
    """Q8_0 bytes ``(..., n_blocks * 34)`` -> float32 ``(..., n_blocks * 32)``: ``d * q``."""
    blocks, shape = _blocks(raw, "Q8_0")
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)       # (n, 1) the scales
    q = blocks[:, 2:].view(np.int8).astype(np.float32)                 # (n, 32)
    return (q * d).reshape(shape)


def dequantize_q4_1(raw: np.ndarray) -> np.ndarray:
    """Q4_1 bytes ``(..., n_blocks * 20)`` -> float32 ``(..., n_blocks * 32)``: ``d * q + m``."""
    blocks, shape = _blocks(raw, "Q4_1")
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)      # (n, 1) the step
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)      # (n, 1) the minimum
    packed = blocks[:, 4:]                                             # (n, 16)
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=1)           # (n, 32): low, then high
    return (d * q.astype(np.float32) + m).reshape(shape)


def quantize_q4_1(x: np.ndarray) -> np.ndarray:
    """Float rows ``(..., n * 32)`` -> Q4_1 bytes ``(..., n * 20)`` (ggml's rule, see above)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] % BLOCK_SIZE != 0:
        raise ValueError(f"Q4_1 rows must hold a multiple of {BLOCK_SIZE} numbers, got shape "
                         f"{x.shape}")
    blocks = x.reshape(-1, BLOCK_SIZE)
    lo, hi = blocks.min(axis=1, keepdims=True), blocks.max(axis=1, keepdims=True)
    d = (hi - lo) / 15
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, 0, 1 / d)
    q = np.trunc((blocks - lo) * inv + np.float32(0.5)).clip(0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    raw = np.concatenate([d.astype(np.float16).view(np.uint8), lo.astype(np.float16).view(np.uint8),
                          packed], axis=1)
    return raw.reshape(x.shape[:-1] + (x.shape[-1] // BLOCK_SIZE * BLOCK_BYTES["Q4_1"],))


def dequantize(raw: np.ndarray, kind: str) -> np.ndarray:
    """Dequantise the stored array of one tensor: ``kind`` is 'F32', 'F16', 'Q8_0' or 'Q4_1'."""
    if kind == "F32":
        return np.asarray(raw).view(np.float32)
    if kind == "F16":
        return np.asarray(raw).view(np.float16).astype(np.float32)
    if kind == "Q8_0":
        return dequantize_q8_0(raw)
    if kind == "Q4_1":
        return dequantize_q4_1(raw)
    raise ValueError(f"storage type must be one of 'F32', 'F16', 'Q8_0', 'Q4_1', got {kind!r}")
