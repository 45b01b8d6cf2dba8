"""The IDX reader on files written here with struct: good ones, and every kind of bad one."""
import gc
import gzip
import warnings

import numpy as np
import pytest

from tinyai.data import IdxFormatError, read_idx


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_reads_raw_and_gzip(tmp_path, write_idx, images, gz):
    path = write_idx(tmp_path / "images.idx", images, gz=gz)
    result = read_idx(path, expected_ndim=3)
    assert result.dtype == np.uint8 and result.shape == (5, 4, 3)
    np.testing.assert_array_equal(result, images)
    result[0, 0, 0] = 1  # the caller owns the array


def test_reads_one_dimensional_labels(tmp_path, write_idx):
    labels = np.array([7, 2, 1, 0, 4], dtype=np.uint8)
    path = write_idx(tmp_path / "labels", labels)
    assert path.read_bytes()[:4] == b"\x00\x00\x08\x01"
    np.testing.assert_array_equal(read_idx(str(path)), labels)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data_is_an_error(tmp_path, write_idx, images, gz):
    path = write_idx(tmp_path / "short.idx", images, cut=7, gz=gz)
    with pytest.raises(IdxFormatError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "truncated; the header declares 5 x 4 x 3 = 60 data bytes but 53 follow it" in message


def test_trailing_bytes_are_an_error(tmp_path, write_idx, images):
    path = write_idx(tmp_path / "long.idx", images, extra=b"\x00\x01")
    with pytest.raises(IdxFormatError, match="trailing bytes; the header declares 5 x 4 x 3 = 60 "
                                             "data bytes but 62 follow it"):
        read_idx(path)


def test_truncated_gzip_stream_is_an_error(tmp_path, images):
    content = gzip.compress(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x05\x00\x00\x00\x04\x00\x00\x00\x03"
                            + images.tobytes())
    path = tmp_path / "cut.gz"
    path.write_bytes(content[: len(content) - 20])
    with pytest.raises(IdxFormatError, match="corrupt or truncated gzip data") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_bad_magic_number(tmp_path, write_idx, images):
    path = write_idx(tmp_path / "bad", images, magic=0x12340803)
    with pytest.raises(IdxFormatError, match=r"bad magic number 0x12340803") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_type_code_other_than_unsigned_byte(tmp_path, write_idx, images):
    path = write_idx(tmp_path / "floats", images, magic=0x00000D03)  # 0x0D = float
    with pytest.raises(IdxFormatError, match=r"type code 0x0d \(magic 0x00000d03\) is not supported; "
                                             r"expected 0x08"):
        read_idx(path)


def test_wrong_number_of_dimensions(tmp_path, write_idx):
    path = write_idx(tmp_path / "labels", np.arange(4, dtype=np.uint8))
    with pytest.raises(IdxFormatError, match=r"header declares 1 dimension\(s\) \(magic 0x00000801\) "
                                             r"but 3 were expected"):
        read_idx(path, expected_ndim=3)


def test_zero_dimensions(tmp_path):
    path = tmp_path / "zero"
    path.write_bytes(b"\x00\x00\x08\x00")
    with pytest.raises(IdxFormatError, match="declares 0 dimensions"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "header"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00")  # 3 sizes promised, 1.5 given
    with pytest.raises(IdxFormatError, match="truncated header; 3 dimension\\(s\\) need 16 header "
                                             "bytes but the file holds 10"):
        read_idx(path)


def test_too_short_and_missing(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(IdxFormatError, match="2 bytes is too short for an IDX header"):
        read_idx(path)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("cut", [0, 5])
def test_every_file_is_closed(tmp_path, write_idx, images, gz, cut):
    # A GzipFile made from an open file does not close that file: it was left to the garbage
    # collector, which says so with a ResourceWarning (found with -W error::ResourceWarning).
    path = write_idx(tmp_path / ("f.gz" if gz else "f"), images, gz=gz, cut=cut)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            read_idx(path)
        except IdxFormatError:
            assert cut  # only the truncated file is refused
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
