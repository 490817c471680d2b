"""Reading a GGUF file, the model format of llama.cpp (introduced in Chapter 9).

A GGUF file is one header followed by the weights, all little-endian:

1. ``b"GGUF"``, the format version (uint32), the number of tensors and of metadata entries (uint64);
2. the **metadata**: for each entry a key (a string: its length as uint64, then UTF-8 bytes), a
   type code (uint32) and the value: a number, a bool, a string, or an array (element type, count,
   elements). Here live the architecture (``general.architecture``), the sizes
   (``llama.block_count`` ...), and the whole tokenizer (``tokenizer.ggml.tokens``, ``.merges``);
3. the **tensor table**: for each tensor its name, number of dimensions, the dimensions (uint64,
   the fastest-changing first, so ``[576, 49152]`` is PyTorch's ``(49152, 576)``), its storage type
   (0 = F32, 1 = F16, 8 = Q8_0, 3 = Q4_1, ...; see :mod:`llmcourse.quant`) and its offset;
4. padding to ``general.alignment`` bytes (32 by default), then the tensors' bytes.

:func:`read_gguf` parses the header with :mod:`struct` (a fraction of a second for SmolLM2's
98,000 tokenizer strings) and maps the file into memory, so a tensor's bytes are read from disk
only when they are used. The tests check it against the ``gguf`` package's ``GGUFReader``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GGUFTensor", "GGUFFile", "read_gguf", "STORAGE_TYPES"]

#: The storage types this reader knows: ggml's type code -> (name, numbers, bytes per block).
STORAGE_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 3: ("Q4_1", 32, 20), 8: ("Q8_0", 32, 34)}

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}
_ARRAYS = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32,
           6: np.float32, 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}
_STRING, _ARRAY = 8, 9


@dataclass
class GGUFTensor:
    """One stored tensor: ``shape`` in PyTorch's order, ``data`` its bytes as a uint8 array of
    shape ``shape[:-1] + (bytes per row,)`` (a view of the file)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass
class GGUFFile:
    version: int
    metadata: dict[str, Any]
    tensors: list[GGUFTensor]


class _Cursor:
    """Reads little-endian values one after the other from a buffer."""

    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def scalar(self, fmt: str):
        try:
            (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        except struct.error:
            raise ValueError(f"{self.path.name}: the GGUF header ends early (at byte "
                             f"{self.pos}); the file is truncated or not GGUF") from None
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.scalar("<Q")
        text = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return text

    def value(self, kind: int):
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            sub, n = self.scalar("<I"), self.scalar("<Q")
            if sub == _STRING:
                return [self.string() for _ in range(n)]
            if sub not in _ARRAYS:
                raise ValueError(f"{self.path.name}: unsupported GGUF array type {sub}")
            values = np.frombuffer(self.buf, dtype=_ARRAYS[sub], count=n, offset=self.pos)
            self.pos += values.nbytes
            return values.tolist()
        if kind not in _SCALARS:
            raise ValueError(f"{self.path.name}: unknown GGUF value type {kind}")
        return self.scalar(_SCALARS[kind])


def read_gguf(path: str | Path) -> GGUFFile:
    """The metadata and tensors of a GGUF file (version 2 or 3); tensor bytes stay on disk."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} not found")
    raw = np.memmap(path, mode="r", dtype=np.uint8)
    if bytes(raw[:4]) != b"GGUF":
        raise ValueError(f"{path.name} is not a GGUF file: it starts with {bytes(raw[:4])!r}, "
                         f"expected b'GGUF'")
    cur = _Cursor(memoryview(raw), path)
    cur.pos = 4
    version, n_tensors, n_meta = cur.scalar("<I"), cur.scalar("<Q"), cur.scalar("<Q")
    if version not in (2, 3):
        raise ValueError(f"{path.name}: GGUF version {version}; this reader knows versions 2, 3")
    metadata = {}
    for _ in range(n_meta):
        key = cur.string()
        metadata[key] = cur.value(cur.scalar("<I"))
    table = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = [cur.scalar("<Q") for _ in range(cur.scalar("<I"))]
        table.append((name, dims, cur.scalar("<I"), cur.scalar("<Q")))
    align = int(metadata.get("general.alignment", 32))
    start = -(-cur.pos // align) * align                      # the header, rounded up
    tensors = []
    for name, dims, code, offset in table:
        if code not in STORAGE_TYPES:
            raise ValueError(f"{path.name}: tensor {name!r} has storage type {code}; this "
                             f"reader knows {sorted(v[0] for v in STORAGE_TYPES.values())}")
        kind, per_block, block_bytes = STORAGE_TYPES[code]
        shape = tuple(int(d) for d in reversed(dims))        # PyTorch order: slowest first
        row_bytes = shape[-1] // per_block * block_bytes
        n_bytes = int(np.prod(shape[:-1], dtype=np.int64)) * row_bytes
        data = raw[start + offset:start + offset + n_bytes].reshape(shape[:-1] + (row_bytes,))
        tensors.append(GGUFTensor(name, kind, shape, data))
    return GGUFFile(version, metadata, tensors)
