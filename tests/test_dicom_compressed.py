"""Compressed DICOM series read voxel for voxel like their uncompressed twins, with the decoders
ct3d installs by default (pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle).

JPEG-LS, JPEG 2000 and RLE series are compressed here with pydicom's encoders (JPEG-LS needs
pyjpegls, in the ``test`` extra). pydicom cannot encode JPEG Lossless, so that series is a
committed fixture made with GDCM by ``fixtures/make_compressed_dicom.py``, beside its twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from fixtures.make_compressed_dicom import FIXTURE, fixture_volume
from pydicom.uid import (
    UID,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from test_dicom import write_series

from ct3d.io import read_volume
from ct3d.volume import Volume


def _same(vol: Volume, twin: Volume) -> None:
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, twin.array)
    assert vol.spacing == twin.spacing
    np.testing.assert_array_equal(vol.affine, twin.affine)


def _compress(files: list[Path], folder: Path, syntax: UID) -> list[Path]:
    """Each file of a series written again into ``folder``, compressed with ``syntax``."""
    folder.mkdir()
    out = []
    for path in files:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(folder / path.name, enforce_file_format=True)
        out.append(folder / path.name)
    return out


@pytest.mark.parametrize("signed", [True, False], ids=["int16", "uint16"])
@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEG2000Lossless, RLELossless],
                         ids=["jpeg-ls", "jpeg2000", "rle"])
def test_compressed_series_reads_like_its_twin(tmp_path: Path, syntax: UID,
                                               signed: bool) -> None:
    twin = write_series(tmp_path / "twin", fixture_volume(), intercept=-1024.0, signed=signed)
    files = _compress(twin, tmp_path / "compressed", syntax)
    ds = pydicom.dcmread(files[0])
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.PixelRepresentation == signed and ds.RescaleIntercept == -1024
    assert len(ds.PixelData) < 0.8 * 2 * ds.Rows * ds.Columns  # really compressed

    vol = read_volume(tmp_path / "compressed")
    _same(vol, read_volume(tmp_path / "twin"))
    np.testing.assert_array_equal(vol.array, fixture_volume().array)


def test_jpeg_lossless_fixture_reads_like_its_twin() -> None:
    """Unsigned 16-bit, RescaleIntercept -1024, JPEG Lossless SV1 as GDCM writes it."""
    files = sorted((FIXTURE / "compressed").iterdir())
    ds = pydicom.dcmread(files[0])
    assert ds.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    assert ds.PixelRepresentation == 0 and ds.RescaleIntercept == -1024
    assert len(files) == 3 and ds.pixel_array.shape == (64, 64)

    vol = read_volume(FIXTURE / "compressed")
    _same(vol, read_volume(FIXTURE / "uncompressed"))
    assert vol.array.min() == -1024.0 and vol.array.max() > 0.0
