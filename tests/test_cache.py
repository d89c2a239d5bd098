"""Preprocessed-scan cache: keys, reuse, atomic writes, failures, streaming reads."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ct3d.cli import main
from ct3d.data.cache import Cache, PreprocessError, npy_layout
from ct3d.data.dataset import Scan
from ct3d.data.pipeline import PipelineError, eval_dataset, input_shape, training_dataset
from ct3d.data.synthetic import generate_cohort
from ct3d.engine import run
from ct3d.io import read_volume
from ct3d.preprocess import build_preprocess
from ct3d.scenario import Scenario

CHAIN = [{"name": "hu_window", "params": {}}, {"name": "resize", "params": {"shape": [24, 20, 8]}}]


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> list[Scan]:
    """A small cohort shared by the module's tests, which only read it."""
    out = tmp_path_factory.mktemp("data")
    paths = generate_cohort(out, 3, 3, seed=4, preset="quick", progress=False)
    return [Scan(str(p), int("CT-23" in str(p)), "x", p.name) for p in paths]


def test_fill_computes_then_reuses_and_stores_the_chain_output(
    scans: list[Scan], tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache", CHAIN)
    first = cache.fill(scans, progress=False)
    assert (first.computed, first.reused, first.failures) == (6, 0, {})
    again = Cache(tmp_path / "cache", CHAIN).fill(scans, progress=False)
    assert (again.computed, again.reused) == (0, 6) and again.paths == first.paths
    expected = build_preprocess(CHAIN)(read_volume(scans[0].path)).array
    cached = np.load(first.paths[0], mmap_mode="r")
    assert isinstance(cached, np.memmap) and cached.dtype == np.float32
    np.testing.assert_array_equal(cached, expected)
    assert json.loads((cache.folder / "chain.json").read_text())[1]["params"] == {
        "shape": [24, 20, 8], "order": 1, "antialias": False}


def test_key_follows_parameters_not_spelling(scans: list[Scan], tmp_path: Path) -> None:
    spelled = [{"name": "hu_window", "params": {"low": -1000, "high": 400.0}},
               {"name": "resize", "params": {"shape": (24, 20, 8), "order": 1}}]
    assert Cache(tmp_path, spelled).folder == Cache(tmp_path, CHAIN).folder
    changed = [CHAIN[0], {"name": "resize", "params": {"shape": [24, 20, 9]}}]
    assert Cache(tmp_path, changed).folder != Cache(tmp_path, CHAIN).folder
    Cache(tmp_path, CHAIN).fill(scans, progress=False)
    assert Cache(tmp_path, changed).fill(scans, progress=False).computed == 6


def test_changed_source_file_is_recomputed(scans: list[Scan], tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", CHAIN)
    old = cache.fill(scans, progress=False).paths[0]
    stat = os.stat(scans[0].path)
    os.utime(scans[0].path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    report = cache.fill(scans, progress=False)
    assert (report.computed, report.reused) == (1, 5) and report.paths[0] != old


def test_folder_source_changes_with_any_file_in_it(tmp_path: Path) -> None:
    series = tmp_path / "series"
    series.mkdir()
    for i in range(3):
        (series / f"{i}.dcm").write_bytes(bytes([i]) * 10)
    cache = Cache(tmp_path / "cache", CHAIN)
    first = cache.path_for(series)
    assert cache.path_for(series) == first
    (series / "1.dcm").write_bytes(b"x" * 11)
    second = cache.path_for(series)
    (series / "3.dcm").write_bytes(b"new slice")
    third = cache.path_for(series)
    (series / "0.dcm").unlink()
    assert len({first, second, third, cache.path_for(series)}) == 4


def test_writes_are_atomic(scans: list[Scan], tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    cache = Cache(tmp_path / "cache", CHAIN)
    target = cache.path_for(scans[0].path)
    cache.folder.mkdir(parents=True)
    (cache.folder / f".{target.stem}.deadbeef.tmp.npy").write_bytes(b"half")

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.fill(scans[:1], progress=False)
    monkeypatch.undo()
    assert not target.exists()
    assert cache.fill(scans[:1], progress=False).computed == 1
    assert npy_layout(target) == ((24, 20, 8), 128)


def test_failed_scans_are_reported_and_the_rest_go_on(scans: list[Scan], tmp_path: Path) -> None:
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(Path(scans[0].path).read_bytes()[:5000])
    bad = [*scans, Scan(str(broken), 0, "x", "broken"), Scan(str(tmp_path / "gone.nii"), 0, "x",
                                                              "gone")]
    for workers in (1, 2):
        report = Cache(tmp_path / f"cache{workers}", CHAIN).fill(bad, workers=workers,
                                                                 progress=False)
        assert report.computed == 6 and report.paths[6:] == [None, None]
        assert "broken.nii.gz: gzip stream is truncated" in report.failures[str(broken)]
        assert "gone.nii: file not found" in report.failures[str(tmp_path / "gone.nii")]
        assert "2 failed" in report.summary()
    with pytest.raises(PreprocessError, match="broken.nii.gz: gzip stream is truncated"):
        Cache(tmp_path / "cache3", CHAIN).fill(bad, strict=True, progress=False)


def test_workers_give_identical_files(scans: list[Scan], tmp_path: Path) -> None:
    one = Cache(tmp_path / "a", CHAIN).fill(scans, workers=1, progress=False).paths
    two = Cache(tmp_path / "b", CHAIN).fill(scans, workers=2, progress=False).paths
    assert [p.name for p in one] == [p.name for p in two]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True))


def test_streamed_batches_match_the_files(scans: list[Scan], tmp_path: Path) -> None:
    paths = Cache(tmp_path, CHAIN).fill(scans, progress=False).paths
    labels = [s.label for s in scans]
    assert input_shape(paths) == (24, 20, 8)
    x, y = zip(*[(b[0].numpy(), b[1].numpy()) for b in eval_dataset(paths, labels, 4)],
               strict=True)
    np.testing.assert_array_equal(np.concatenate(x)[..., 0], np.stack([np.load(p) for p in paths]))
    assert np.concatenate(y).tolist() == labels
    train = training_dataset(paths, labels, 4, seed=1, augment=None, epochs=3)
    seen = [b[0].numpy() for b in train]
    assert [s.shape[0] for s in seen] == [4, 2, 4, 2, 4, 2]
    by_sum = {float(np.load(p).sum()): i for i, p in enumerate(paths)}
    epochs = [[by_sum[float(v.sum())] for v in np.concatenate(seen[i:i + 2])] for i in (0, 2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(6))
    assert epochs[0] != epochs[1]
    again = [b[0].numpy() for b in training_dataset(paths, labels, 4, 1, None, epochs=3)]
    assert all(np.array_equal(a, b) for a, b in zip(seen, again, strict=True))
    resumed = [b[0].numpy() for b in training_dataset(paths, labels, 4, 1, None, epochs=3,
                                                      initial_epoch=1)]
    assert all(np.array_equal(a, b) for a, b in zip(seen[2:], resumed, strict=True))
    assert tf.executing_eagerly()


def test_shape_mismatch_names_the_file(scans: list[Scan], tmp_path: Path) -> None:
    a = Cache(tmp_path, CHAIN).fill(scans[:1], progress=False).paths
    other = [CHAIN[0], {"name": "resize", "params": {"shape": [8, 8, 8]}}]
    b = Cache(tmp_path, other).fill(scans[:1], progress=False).paths
    with pytest.raises(PipelineError, match=f"{b[0]}: preprocessed shape \\(8, 8, 8\\) differs"):
        input_shape([*a, *b])


def test_cli_preprocess_fills_then_reuses(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "s.yaml"
    Scenario.preset("quick").with_overrides({
        "data.root": str(tmp_path / "data"), "data.cache": str(tmp_path / "cache"),
        "data.synthetic.normal": 3, "data.synthetic.abnormal": 3}).to_yaml(path)
    assert main(["preprocess", str(path), "--workers", "2"]) == 0
    assert "6 computed, 0 reused, 0 failed" in capsys.readouterr().out
    assert main(["preprocess", str(path)]) == 0
    assert "0 computed, 6 reused, 0 failed" in capsys.readouterr().out


@pytest.mark.slow
def test_training_skips_and_reports_an_unreadable_scan(
    cohort_root: Path, tmp_path: Path, make_scenario  # noqa: ANN001
) -> None:
    run(make_scenario(cohort_root, tmp_path / "warm", **{"train.epochs": 1}), verbose=0)
    source = next(cohort_root.glob("quick-*"))
    folder = tmp_path / "folder"
    shutil.copytree(source, folder)
    bad = folder / "CT-0" / "study_0099.nii.gz"
    bad.write_text("not a scan")
    s = make_scenario(cohort_root, tmp_path / "run", **{
        "data.source": "folder", "data.root": str(folder), "train.epochs": 1})
    result = run(s, verbose=0)
    assert list(result.metrics["skipped"]) == [str(bad)]
    assert "not gzip-compressed" in result.metrics["skipped"][str(bad)]
    split = (tmp_path / "run" / "split.csv").read_text()
    assert "study_0099.nii.gz" in split and "not gzip-compressed" in split
    with pytest.raises(PreprocessError, match="study_0099.nii.gz"):
        run(s.with_overrides({"data.strict": True}), verbose=0, force=True)
