"""load_scan: real NIfTI files written by nibabel, and broken ones made by editing their bytes."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from torchsci.errors import DataError
from torchsci_neuro.io import load_scan

ANATOMICAL = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"


def _write(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.0, 1.0]) if affine is None else affine), path)
    return path


def _volume(shape=(8, 9, 10)) -> np.ndarray:
    return np.random.RandomState(0).uniform(1, 100, size=shape).astype(np.float32)


def _raises(path: Path, problem: str) -> None:
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*" + problem):
        load_scan(path)


def test_reads_nibabel_test_anatomical_las():
    scan = load_scan(ANATOMICAL)
    assert scan.shape == (33, 41, 25)
    assert scan.voxel_size == (2.0, 2.0, 2.0)
    assert scan.orientation == ("L", "A", "S")
    assert scan.data.dtype == np.float32
    np.testing.assert_allclose(scan.data, nib.load(ANATOMICAL).get_fdata())


def test_gzip_file_and_scaling_are_read(tmp_path):
    data = _volume().astype(np.int16)
    image = nib.Nifti1Image(data, np.diag([0.9, 0.9, 3.0, 1.0]))
    image.header.set_slope_inter(2.0, 5.0)
    nib.save(image, tmp_path / "t1.nii.gz")
    scan = load_scan(tmp_path / "t1.nii.gz")
    np.testing.assert_allclose(scan.data, data * 2.0 + 5.0)
    assert scan.voxel_size == pytest.approx((0.9, 0.9, 3.0))
    assert scan.voxel_volume_ml == pytest.approx(0.9 * 0.9 * 3.0 / 1000)


def test_4d_with_one_volume_is_accepted(tmp_path):
    data = _volume((8, 9, 10, 1))
    scan = load_scan(_write(tmp_path / "one.nii.gz", data))
    assert scan.shape == (8, 9, 10)


def test_nibabel_image_in_memory_is_accepted():
    scan = load_scan(nib.Nifti1Image(_volume(), np.eye(4)))
    assert scan.source == "<nibabel image>" and scan.shape == (8, 9, 10)


def test_not_a_nifti(tmp_path):
    path = tmp_path / "notes.nii"
    path.write_text("subject 12, session 2\n" * 30)
    _raises(path, "not a NIfTI")


def test_missing_file(tmp_path):
    _raises(tmp_path / "absent.nii.gz", "no such file")


def test_truncated_gzip(tmp_path):
    path = _write(tmp_path / "t1.nii.gz", _volume((20, 20, 20)))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    _raises(path, "corrupt or truncated gzip")


def test_corrupt_gzip(tmp_path):
    path = _write(tmp_path / "t1.nii.gz", _volume((20, 20, 20)))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    _raises(path, "corrupt or truncated gzip")


def test_truncated_uncompressed_file(tmp_path):
    path = _write(tmp_path / "t1.nii", _volume())
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    _raises(path, "truncated or its header disagrees")


def test_header_shape_larger_than_data(tmp_path):
    path = _write(tmp_path / "t1.nii.gz", _volume())
    raw = bytearray(gzip.decompress(path.read_bytes()))
    assert np.frombuffer(bytes(raw[40:48]), "<i2").tolist() == [3, 8, 9, 10]
    raw[46:48] = np.int16(40).tobytes()  # dim[3]: 10 -> 40 slices the file does not hold
    path.write_bytes(gzip.compress(bytes(raw)))
    _raises(path, r"shape \(8, 9, 40\).*header disagrees")


def test_2d_image(tmp_path):
    _raises(_write(tmp_path / "slice.nii.gz", _volume((30, 30))), "2D image")


def test_single_slice_volume_is_2d(tmp_path):
    _raises(_write(tmp_path / "slice.nii.gz", _volume((30, 30, 1))), "2D image")


def test_4d_with_several_volumes(tmp_path):
    _raises(_write(tmp_path / "fmri.nii.gz", _volume((8, 9, 10, 3))), "3 volumes")


def test_nan_data(tmp_path):
    data = _volume()
    data[2, 3, 4] = np.nan
    _raises(_write(tmp_path / "nan.nii.gz", data), "1 voxels are NaN")


def test_all_zero_data(tmp_path):
    _raises(_write(tmp_path / "zero.nii.gz", np.zeros((8, 9, 10), np.float32)), "every voxel is zero")


@pytest.mark.parametrize("size", [0.01, 25.0])
def test_absurd_voxel_size(tmp_path, size):
    path = _write(tmp_path / "units.nii.gz", _volume(), np.diag([size, 1.0, 1.0, 1.0]))
    _raises(path, "voxel size")


def test_singular_affine(tmp_path):
    affine = np.eye(4)
    affine[:3, 2] = affine[:3, 1]  # two axes pointing the same way
    image = nib.Nifti1Image(_volume(), affine)
    image.set_qform(None, code=0)
    nib.save(image, tmp_path / "singular.nii.gz")
    _raises(tmp_path / "singular.nii.gz", "singular")
