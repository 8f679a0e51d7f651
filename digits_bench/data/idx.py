"""The IDX file format of MNIST-style datasets (LeCun's), parsed from bytes and written with numpy."""
from __future__ import annotations

import struct

import numpy as np

_UBYTE = 0x08


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE:
        raise ValueError(f"{name} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{name} is truncated: header says {dims}, found {data.size} bytes of data")
    return data.reshape(dims)


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array exactly as the canonical MNIST files are laid out."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()
