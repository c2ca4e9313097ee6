"""Reading scans: a NIfTI file (or a nibabel image) into a validated :class:`Scan`.

This is the byte layer of the neuro plug-in: it decides whether a file is a usable 3D scan and says
why not, naming the file, before any resampling or inference starts. Everything downstream can then
trust the data (finite, not empty, 3D) and the geometry (a proper affine with sane voxel sizes).
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from torchsci.errors import DataError

#: Voxel edges outside this range (mm) are a units or header mistake, not a brain scan.
VOXEL_SIZE_RANGE_MM = (0.1, 10.0)

_NIFTI_HEADER_SIZES = {348: nib.Nifti1Image, 540: nib.Nifti2Image}


@dataclass(frozen=True)
class Scan:
    """A validated 3D scan: intensities on a voxel grid and the grid's place in the world (mm).

    Attributes
    ----------
    data
        float32 ``(X, Y, Z)`` intensities (a 4D file's single volume, scaling applied).
    affine
        4x4 voxel-to-world (RAS+ mm) matrix.
    header
        The NIfTI header it came with (for qform/sform codes and units of outputs on this grid).
    source
        Where it came from, for messages: the file name or ``"<nibabel image>"``.
    """

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header | nib.Nifti2Header
    source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel edge lengths in mm along the array axes (from the affine, so oblique grids are right)."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Closest anatomical direction of each array axis, e.g. ``("L", "A", "S")`` for LAS."""
        return nib.aff2axcodes(self.affine)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (``|det|`` of the affine's 3x3 part, mm^3 / 1000)."""
        return abs(float(np.linalg.det(self.affine[:3, :3]))) / 1000.0


def _decompress(raw: bytes, name: str) -> bytes:
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: corrupt or truncated gzip ({exc}); re-export or re-copy the file.") from exc


def _parse(raw: bytes, name: str) -> nib.Nifti1Image | nib.Nifti2Image:
    if len(raw) < 4:
        raise DataError(f"{name}: not a NIfTI file (only {len(raw)} bytes).")
    image_class = None
    for order in ("<", ">"):
        image_class = image_class or _NIFTI_HEADER_SIZES.get(struct.unpack(order + "i", raw[:4])[0])
    if image_class is None:
        raise DataError(f"{name}: not a NIfTI file (its first bytes are no NIfTI-1/2 header); "
                        "convert it to .nii or .nii.gz (e.g. with dcm2niix or nibabel).")
    try:
        # nibabel silently sets zero voxel sizes to 1 mm when it reads a header; look before it does.
        _check_geometry(image_class.header_class.from_fileobj(io.BytesIO(raw), check=False), name)
        image = image_class.from_bytes(raw)
    except DataError:
        raise
    except Exception as exc:  # nibabel raises many kinds (HeaderDataError, ValueError, struct.error) for bad headers
        raise DataError(f"{name}: unreadable NIfTI header ({type(exc).__name__}: {exc}).") from exc
    header = image.header
    if bytes(header["magic"]).rstrip(b"\x00") in (b"ni1", b"ni2"):
        raise DataError(f"{name}: a NIfTI header/image pair (.hdr + .img); save it as one .nii or .nii.gz file.")
    # A single file with vox_offset 0 (old writers) keeps its data right after the header and extensions.
    offset = int(header.get_data_offset()) or header.single_vox_offset
    expected = offset + int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize
    if len(raw) != expected:
        raise DataError(f"{name}: the header says shape {header.get_data_shape()} of "
                        f"{header.get_data_dtype()} ({expected} bytes with the header), but the file holds "
                        f"{len(raw)} bytes: it is truncated or its header disagrees with its data.")
    return image


def _spatial(data: np.ndarray, name: str) -> np.ndarray:
    if data.ndim < 3 or any(n == 1 for n in data.shape[:3]):
        raise DataError(f"{name}: a 2D image (shape {data.shape}); segmentation needs a 3D scan.")
    extra = data.shape[3:]
    if any(n != 1 for n in extra):
        raise DataError(f"{name}: {int(np.prod(extra))} volumes (shape {data.shape}); pass one 3D volume, "
                        f"e.g. nibabel.funcs.four_to_three(img)[0] or image.slicer[..., 0].")
    return data.reshape(data.shape[:3])


def _check_geometry(header: object, name: str) -> None:
    if isinstance(header, (nib.Nifti1Header, nib.Nifti2Header)) and not header["qform_code"] \
            and not header["sform_code"] and (np.asarray(header["pixdim"][1:4]) <= 0).any():
        raise DataError(f"{name}: the header has no qform/sform and voxel sizes (pixdim) "
                        f"{tuple(float(v) for v in header['pixdim'][1:4])}: where the voxels lie and how large they "
                        "are is unknown; set the affine (nibabel: img.set_qform(affine, 1)) and save it again.")


def validate_image(image: nib.spatialimages.SpatialImage, name: str) -> Scan:
    """Check a nibabel image and return it as a :class:`Scan` (see :func:`load_scan` for the checks)."""
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{name}: a {type(image).__name__}, not a NIfTI image; convert it with "
                        "nibabel.Nifti1Image(img.get_fdata(), img.affine).")
    if len(image.shape) < 3:
        raise DataError(f"{name}: a 2D image (shape {image.shape}); segmentation needs a 3D scan.")
    _check_geometry(image.header, name)
    dtype = image.get_data_dtype()
    if dtype.kind == "c":
        raise DataError(f"{name}: complex-valued voxels ({dtype}); segmentation needs a magnitude image: save "
                        "np.abs(img.get_fdata(dtype=np.complex64)) as a new NIfTI.")
    if dtype.fields is not None:
        raise DataError(f"{name}: voxels of a structured type ({dtype}, e.g. RGB); save one grey-value channel.")
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise DataError(f"{name}: its affine is singular or not finite ({affine[:3, :3].tolist()}); fix the "
                        "header's qform/sform (nibabel: img.set_sform(...)).")
    voxel_size = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    low, high = VOXEL_SIZE_RANGE_MM
    if (voxel_size < low).any() or (voxel_size > high).any():
        raise DataError(f"{name}: voxel size {tuple(np.round(voxel_size, 4))} mm is outside {low}-{high} mm; "
                        "the header's units or affine are wrong (fix them with nibabel).")
    try:
        data = np.asarray(image.dataobj, dtype=np.float32)
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{name}: its voxel data could not be read ({exc}); the file is truncated or its "
                        "header disagrees with its data.") from exc
    data = _spatial(data, name)
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise DataError(f"{name}: {bad} voxels are NaN or infinite; replace them (np.nan_to_num) before segmenting.")
    if not data.any():
        raise DataError(f"{name}: every voxel is zero; the image holds no scan.")
    return Scan(data=data, affine=affine, header=image.header, source=name)


def load_scan(scan: str | os.PathLike | nib.spatialimages.SpatialImage | Scan) -> Scan:
    """Read and validate a 3D scan from a ``.nii``/``.nii.gz`` file or a nibabel image.

    Every problem is a :class:`torchsci.DataError` naming the file: not a NIfTI, a corrupt or
    truncated gzip, a header whose shape disagrees with the data size, a 2D image, a 4D image with
    more than one volume (one volume is accepted), NaN/infinite or all-zero data, a singular affine,
    voxel sizes outside 0.1-10 mm, no qform/sform with zero voxel sizes (pixdim), complex or RGB voxels.

    Parameters
    ----------
    scan
        A path, a ``nibabel.Nifti1Image``/``Nifti2Image``, or an already validated :class:`Scan`.

    Returns
    -------
    Scan
        float32 data ``(X, Y, Z)``, the affine, the header and the source name.

    Examples
    --------
    >>> import nibabel as nib, numpy as np
    >>> image = nib.Nifti1Image(np.ones((4, 5, 6), np.float32), np.diag([-2.0, 2.0, 2.0, 1.0]))
    >>> scan = load_scan(image)
    >>> scan.shape, scan.voxel_size, "".join(scan.orientation)
    ((4, 5, 6), (2.0, 2.0, 2.0), 'LAS')
    """
    if isinstance(scan, Scan):
        return scan
    if isinstance(scan, nib.spatialimages.SpatialImage):
        return validate_image(scan, scan.get_filename() or "<nibabel image>")
    path = Path(scan)
    name = str(path)
    if not path.is_file():
        raise DataError(f"{name}: no such file.")
    raw = _decompress(path.read_bytes(), name)
    return validate_image(_parse(raw, name), name)
