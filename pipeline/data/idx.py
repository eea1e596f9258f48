"""Reading and writing IDX files, the format MNIST is published in.

Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code, a
dimension count, one big-endian uint32 per dimension, then the values in
big-endian C order. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from pipeline.errors import IdxError

_GZIP_MAGIC = b"\x1f\x8b"

# Big-endian on disk; converted to native order after reading.
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_DIMS = 4


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzip, detected by content) into a native-endian array.

    Raises IdxError naming the file when the header, the payload length or the
    gzip stream is wrong.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise IdxError(
                f"{path}: corrupt or truncated gzip stream ({err}); delete the file and download it again"
            ) from err

    if len(data) < 4:
        raise IdxError(f"{path}: file is {len(data)} bytes, too short for an IDX header (4 bytes)")
    zero0, zero1, code, ndim = data[:4]
    if zero0 != 0 or zero1 != 0:
        raise IdxError(f"{path}: not an IDX file: magic starts with {data[:2].hex()}, expected 0000")
    if code not in _DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _DTYPES)
        raise IdxError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if not 1 <= ndim <= _MAX_DIMS:
        raise IdxError(f"{path}: IDX dimension count is {ndim}, expected 1 to {_MAX_DIMS}")

    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxError(
            f"{path}: header declares {ndim} dimensions ({header_len} header bytes) "
            f"but the file has only {len(data)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[code]
    expected = header_len + math.prod(shape) * dtype.itemsize
    if len(data) < expected:
        raise IdxError(
            f"{path}: truncated: shape {shape} of {dtype.name} needs {expected} bytes "
            f"(after decompression), found {len(data)}; delete the file and download it again"
        )
    if len(data) > expected:
        raise IdxError(
            f"{path}: {len(data) - expected} trailing bytes: shape {shape} of {dtype.name} "
            f"needs {expected} bytes (after decompression), found {len(data)}"
        )

    values = np.frombuffer(data, dtype=dtype, offset=header_len)
    # astype copies, so the result is writable and no longer tied to `data`.
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array of 1 to 4 dimensions as IDX; gzip-compressed if path ends in .gz.

    Gzip output uses mtime=0 so the same array always gives the same bytes.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx({path}): only uint8 arrays are supported, got {array.dtype}")
    if not 1 <= array.ndim <= _MAX_DIMS:
        raise ValueError(f"write_idx({path}): array has {array.ndim} dimensions, IDX allows 1 to {_MAX_DIMS}")
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + np.ascontiguousarray(array).tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
