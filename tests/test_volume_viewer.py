"""VolumeViewer: NiiVue volumes that keep the scan's geometry, overlays with their controls,
CT windows that survive the browser's loading, the crosshair read-out, and the 2D fallback
without the ``viewer`` extra. (That it draws in a real browser was checked by hand: see the
README's screenshot.)"""

from __future__ import annotations

import gzip
from pathlib import Path

import ipywidgets as widgets
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from ipyniivue import SliceType
from test_dicom import write_series
from test_io_itk import itk_image

from ct3d.data.synthetic import generate_scan
from ct3d.io import read_volume, write_volume
from ct3d.volume import Volume
from ct3d.widgets import ScanViewer, VolumeViewer, volume3d
from ct3d.widgets import viewer as scan_viewer


@pytest.fixture(scope="module")
def scan() -> tuple[Volume, np.ndarray]:
    volume, mask = generate_scan(seed=3, abnormal=True)
    return volume, mask


def _decoded(data: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(data))


def test_volumes_reach_niivue_with_their_own_geometry(
    scan: tuple[Volume, np.ndarray], tmp_path: Path,
) -> None:
    volume, mask = scan
    heat = volume.replace(array=np.linspace(0, 1, volume.array.size, dtype=np.float32)
                          .reshape(volume.shape), source="map")
    coarse = Volume(np.ones((8, 8, 4), np.float32), (16.0, 16.0, 7.0),
                    np.diag([16.0, 16.0, 7.0, 1.0]), "coarse map")
    write_volume(coarse, tmp_path / "coarse_gradcam.nii.gz")
    viewer = VolumeViewer(volume, overlays={"lesions": mask, "Grad-CAM": heat,
                                            "coarse": tmp_path / "coarse_gradcam.nii.gz"})
    assert not viewer.fallback
    names = [v.name for v in viewer.nv.volumes]
    assert names == ["scan.nii.gz", "lesions.nii.gz", "Grad-CAM.nii.gz", "coarse.nii.gz"]
    base, lesions, cam, other = (_decoded(v.data) for v in viewer.nv.volumes)
    np.testing.assert_allclose(base.affine, volume.affine, atol=1e-4)  # NIfTI: float32
    assert base.get_data_dtype() == np.int16  # whole HU
    np.testing.assert_array_equal(np.asarray(base.dataobj), volume.array)
    assert lesions.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(lesions.dataobj), mask)
    assert cam.get_data_dtype() == np.float32
    np.testing.assert_allclose(other.affine, read_volume(tmp_path / "coarse_gradcam.nii.gz",
                                                         hu=False).affine)
    assert other.shape == (8, 8, 4)  # another grid: NiiVue places it by its affine
    styles = [(v.colormap, v.cal_min, v.cal_max, v.opacity) for v in viewer.nv.volumes[1:]]
    assert styles == [("red", 0.5, 1.0, 0.4), ("green", 0.5, 1.0, 0.4), ("warm", 0.5, 1.0, 0.4)]
    with pytest.raises(ValueError, match=r"an overlay array must have the scan's shape"):
        VolumeViewer(volume, overlays={"bad": np.zeros((2, 2, 2))})


def test_a_dicom_series_folder_opens_as_its_volume(
    scan: tuple[Volume, np.ndarray], tmp_path: Path,
) -> None:
    volume, _ = scan
    write_series(tmp_path / "series", volume)
    viewer = VolumeViewer(tmp_path / "series")
    shown = _decoded(viewer.nv.volumes[0].data)
    expected = read_volume(tmp_path / "series")
    np.testing.assert_allclose(shown.affine, expected.affine, atol=1e-4)
    assert shown.shape == expected.shape


def test_nrrd_and_metaimage_files_open_as_their_volumes(
    scan: tuple[Volume, np.ndarray], tmp_path: Path,
) -> None:
    volume, mask = scan
    sitk.WriteImage(itk_image(volume), str(tmp_path / "scan.nrrd"), useCompression=True)
    sitk.WriteImage(itk_image(volume, mask.T.astype(np.uint8)), str(tmp_path / "mask.mha"))
    viewer = VolumeViewer(tmp_path / "scan.nrrd", overlays={"lesions": tmp_path / "mask.mha"})
    base, lesions = (_decoded(v.data) for v in viewer.nv.volumes)
    np.testing.assert_array_equal(np.asarray(base.dataobj), volume.array)
    np.testing.assert_allclose(base.affine, volume.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(lesions.dataobj), mask)
    np.testing.assert_array_equal(ScanViewer(tmp_path / "scan.nrrd").volumes[0].array,
                                  volume.array)


def test_windows_presets_sliders_and_loading(scan: tuple[Volume, np.ndarray]) -> None:
    viewer = VolumeViewer(scan[0])
    assert viewer.window == (-1350.0, 150.0) and viewer.presets.value == "lung"
    viewer.set_window("bone")
    assert viewer.window == (-500.0, 1500.0)
    assert (viewer.level.value, viewer.width.value, viewer.presets.value) == (500, 2000, "bone")
    viewer.width.value = 400
    assert viewer.window == (300.0, 700.0) and viewer.presets.value == "custom"
    viewer.level.value = 40
    assert viewer.window == (-160.0, 240.0) and viewer.presets.value == "mediastinum"
    viewer.presets.value = "lung"
    assert (viewer.nv.volumes[0].cal_min, viewer.nv.volumes[0].cal_max) == (-1350.0, 150.0)
    viewer.set_window((-1000.0, 0.0))
    assert viewer.presets.value == "custom" and viewer.level.value == -500
    # the browser, once it has loaded the scan, sends back the window it started with:
    sent: list[tuple[float, float]] = []
    viewer.nv.volumes[0].observe(lambda c: sent.append(c["new"]), "cal_min")
    viewer.nv.volumes[0].cal_min = -1350.0
    viewer._loaded(viewer.nv.volumes[0])
    assert viewer.window == (-1000.0, 0.0) and viewer.nv.volumes[0].cal_min == -1000.0
    assert sent[-2:] == [-1001.0, -1000.0]  # a change the browser hears, then the window


def test_layout_overlay_controls_and_crosshair(scan: tuple[Volume, np.ndarray]) -> None:
    volume, mask = scan
    viewer = VolumeViewer(volume, overlays={"lesions": mask}, layout="axial")
    assert viewer.nv.opts.slice_type == SliceType.AXIAL
    viewer.layout_buttons.value = "3D"
    assert viewer.nv.opts.slice_type == SliceType.RENDER
    viewer.layout_buttons.value = "planes + 3D"
    assert viewer.nv.opts.slice_type == SliceType.MULTIPLANAR
    row = next(w for w in viewer.widget.children if isinstance(w, widgets.HBox)
               and isinstance(w.children[0], widgets.Dropdown))
    colormap, opacity = row.children
    colormap.value, opacity.value = "hot", 0.8
    assert (viewer.nv.volumes[1].colormap, viewer.nv.volumes[1].opacity) == ("hot", 0.8)
    viewer.show_location({"vox": [10, 20, 5], "mm": [1.0, 2.5, -3.0, 1.0],
                          "values": [-850.2, {"value": 1.0}]})
    assert viewer.status.value == ("voxel (10, 20, 5) · (1.0, 2.5, -3.0) mm · -850 HU · "
                                   "lesions 1.00")


def test_without_the_extra_it_is_the_2d_viewer_and_says_how_to_get_3d(
    scan: tuple[Volume, np.ndarray], monkeypatch: pytest.MonkeyPatch,
) -> None:
    volume, mask = scan
    monkeypatch.setattr(volume3d, "viewer_available", lambda: False)
    viewer = VolumeViewer(volume, overlays={"lesions": mask})
    assert viewer.fallback
    hint, view = viewer.widget.children
    assert 'pip install "ct3d[viewer]"' in hint.value and "2D viewer" in hint.value
    assert isinstance(view, widgets.VBox)
    monkeypatch.setattr(scan_viewer, "viewer_available", lambda: False)
    said = ScanViewer(volume).widget.children[-1]
    assert "VolumeViewer" in said.value and 'pip install "ct3d[viewer]"' in said.value
    monkeypatch.setattr(scan_viewer, "viewer_available", lambda: True)
    assert not isinstance(ScanViewer(volume).widget.children[-1], widgets.HTML)
