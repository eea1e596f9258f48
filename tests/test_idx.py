import gzip
import struct

import numpy as np
import pytest

from pipeline.data.idx import read_idx, write_idx
from pipeline.errors import DataError, IdxError


def _header(code: int, shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


@pytest.mark.parametrize("suffix", ["idx", "idx.gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5)])
def test_round_trip(tmp_path, suffix, shape):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / f"a.{suffix}"
    write_idx(path, array)
    out = read_idx(path)
    assert out.dtype == np.uint8
    assert out.shape == shape
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # the result must be writable


def test_gzip_detected_by_content_not_extension(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz = tmp_path / "a.gz"
    write_idx(gz, array)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    renamed = gz.rename(tmp_path / "a.idx")
    np.testing.assert_array_equal(read_idx(renamed), array)

    plain_named_gz = tmp_path / "b.gz"
    plain_named_gz.write_bytes(_header(0x08, (3, 4)) + array.tobytes())
    np.testing.assert_array_equal(read_idx(plain_named_gz), array)


def test_plain_layout_and_gzip_deterministic(tmp_path):
    array = np.array([[1, 2, 3], [4, 5, 255]], dtype=np.uint8)
    write_idx(tmp_path / "a.idx", array)
    assert (tmp_path / "a.idx").read_bytes() == bytes.fromhex("0000080200000002000000030102030405ff")
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == (tmp_path / "a.idx").read_bytes()


@pytest.mark.parametrize(
    ("code", "values"),
    [
        (0x09, np.array([-128, -1, 0, 127], dtype=">i1")),
        (0x0B, np.array([-32768, -2, 300, 32767], dtype=">i2")),
        (0x0C, np.array([-(2**31), -5, 70000, 2**31 - 1], dtype=">i4")),
        (0x0D, np.array([-1.5, 0.0, 3.25, 1e30], dtype=">f4")),
        (0x0E, np.array([-1.5, 0.0, np.pi, 1e300], dtype=">f8")),
    ],
)
def test_other_dtypes_come_back_native_endian(tmp_path, code, values):
    path = tmp_path / "v.idx"
    path.write_bytes(_header(code, (2, 2)) + values.tobytes())
    out = read_idx(path)
    assert out.dtype == values.dtype.newbyteorder("=")
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, values.reshape(2, 2))


def test_write_idx_rejects_non_uint8(tmp_path):
    with pytest.raises(TypeError, match="uint8"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int16))


VALID = _header(0x08, (2, 5)) + bytes(range(10))


@pytest.mark.parametrize(
    ("data", "expected_in_message"),
    [
        pytest.param(b"\x01\x00" + VALID[2:], "magic", id="bad-magic"),
        pytest.param(VALID[:2] + b"\x0a" + VALID[3:], "0x0A", id="unknown-dtype"),
        pytest.param(VALID[:-1], "needs 22 bytes", id="truncated-payload"),
        pytest.param(VALID + b"\x00\x00", "2 trailing bytes", id="trailing-bytes"),
        pytest.param(bytes([0, 0, 8, 0]), "dimension count is 0", id="zero-dims"),
        pytest.param(bytes([0, 0, 8, 5]) + bytes(20), "dimension count is 5", id="five-dims"),
        pytest.param(VALID[:9], "declares 2 dimensions", id="truncated-header"),
        pytest.param(b"", "too short", id="empty"),
        pytest.param(gzip.compress(VALID, mtime=0)[:-12], "gzip", id="truncated-gzip"),
    ],
)
def test_corrupt_files_raise_naming_the_file(tmp_path, data, expected_in_message):
    path = tmp_path / "corrupt-sample.idx"
    path.write_bytes(data)
    with pytest.raises(IdxError) as info:
        read_idx(path)
    assert isinstance(info.value, DataError)
    assert str(path) in str(info.value)
    assert expected_in_message in str(info.value)


def test_truncated_payload_reports_expected_and_found(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(VALID[:-3])
    with pytest.raises(IdxError, match=r"needs 22 bytes .*found 19"):
        read_idx(path)


def test_corrupt_gzip_body_raises_idx_error(tmp_path):
    compressed = bytearray(gzip.compress(VALID, mtime=0))
    compressed[-6] ^= 0xFF  # inside the stored length/CRC trailer
    path = tmp_path / "bad-crc.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(IdxError, match="bad-crc.gz"):
        read_idx(path)
