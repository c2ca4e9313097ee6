"""A study through ``torchsci neuro segment``: a BIDS dataset of the offline scans in, derivatives, one volumes
table with intervals and an HTML report out (opened in headless Chromium); kill and re-run; failures; shards."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_to_output

from torchsci_neuro.derivatives import StudyScan, find_scans, shard
from torchsci_neuro.study import segment_study

from .browser import Browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TORCHSCI_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def offline_scans() -> dict[str, nib.Nifti1Image]:
    """The scans that ship offline, made small: MNI152 at 4 mm (RAS), the same reoriented to LPS and cropped,
    and nibabel's real anatomical.nii (2 mm, LAS)."""
    from torchsci_neuro.templates import template_path

    mni = nib.load(template_path("t1"))
    mni4 = resample_to_output(nib.Nifti1Image(np.asarray(mni.dataobj, np.float32), mni.affine), (4, 4, 4), order=1)
    lps = mni4.as_reoriented(nib.orientations.axcodes2ornt(("L", "P", "S"))).slicer[2:-3, 4:-2, 3:]
    anat = nib.load(Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii")
    return {"mni4": mni4, "lps": lps, "anat": nib.Nifti1Image(np.asarray(anat.dataobj, np.float32), anat.affine)}


@pytest.fixture(scope="module")
def bids_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bids") / "ds"
    scans = offline_scans()
    layout = {"sub-01/anat/sub-01_T1w.nii.gz": scans["mni4"],
              "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz": scans["anat"],
              "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz": scans["lps"]}
    for name, image in layout.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, root / name)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "offline scans", "BIDSVersion": "1.9.0"}))
    (root / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    return root


# A study runs several interpreters (CLI, workers, Chromium): on a 2-core box shared with other jobs they
# took up to 10x their quiet time, so the slow tests get a wider pytest timeout than the suite's 600 s.
SLOW_TIMEOUT_S = 1800


def _cli(*args: str, cwd: Path, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torchsci.cli", "neuro", "segment", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _table(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_bids_dataset_in_derivatives_table_and_report_out(bids_root, trained_checkpoint, tmp_path):
    done = _cli(str(bids_root), "--model", str(trained_checkpoint), "--jobs", "2", "--report", "report.html",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\r" not in done.stderr  # a batch log gets one line per scan, no progress-bar redraws
    assert "[3/3]" in done.stderr and "3 segmented, 0 already done, 0 failed of 3" in done.stderr
    out = bids_root / "derivatives" / "torchsci"

    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"]
    generated = description["GeneratedBy"][0]
    sha = hashlib.sha256(trained_checkpoint.read_bytes()).hexdigest()
    assert generated["Name"] == "torchsci" and generated["Version"]
    assert trained_checkpoint.name in generated["Description"] and sha in generated["Description"]
    assert (out / "dseg.tsv").read_text().splitlines()[1:] == ["1\tCSF\t#1f77b4", "2\tGM\t#ff7f0e", "3\tWM\t#2ca02c"]

    # pybids reads the outputs back as a derivatives dataset of the raw one.
    from bids import BIDSLayout

    layout = BIDSLayout(str(bids_root), derivatives=str(out))
    dsegs = layout.get(scope="derivatives", desc="tissue", suffix="dseg", extension=".nii.gz")
    masks = layout.get(scope="derivatives", desc="brain", suffix="mask", extension=".nii.gz")
    assert sorted(Path(f.path).relative_to(out).as_posix() for f in dsegs) == [
        "sub-01/anat/sub-01_desc-tissue_dseg.nii.gz", "sub-02/ses-1/anat/sub-02_ses-1_desc-tissue_dseg.nii.gz",
        "sub-02/ses-2/anat/sub-02_ses-2_desc-tissue_dseg.nii.gz"]
    assert len(masks) == 3

    rows = {r["scan"]: r for r in _table(out / "volumes.tsv")}
    assert sorted(rows) == ["sub-01", "sub-02_ses-1", "sub-02_ses-2"]
    assert rows["sub-02_ses-1"]["subject"] == "02" and rows["sub-02_ses-1"]["session"] == "1"
    for dseg in dsegs:
        labels = nib.load(dseg.path)
        source = nib.load(layout.get(scope="raw", subject=dseg.entities["subject"], suffix="T1w",
                                     session=dseg.entities.get("session"), extension=".nii.gz")[0].path)
        assert labels.shape == source.shape and np.allclose(labels.affine, source.affine)
        data = np.asarray(labels.dataobj)
        voxel_ml = abs(np.linalg.det(source.affine[:3, :3])) / 1000
        row = rows[Path(dseg.path).name.removesuffix("_desc-tissue_dseg.nii.gz")]
        assert row["status"] == "ok" and row["model_sha256"] == sha and row["interval"] == "posterior"
        assert float(row["TIV_ml"]) == pytest.approx((data > 0).sum() * voxel_ml, abs=1e-2)
        mask = np.asarray(nib.load(str(dseg.path).replace("desc-tissue_dseg", "desc-brain_mask")).dataobj)
        np.testing.assert_array_equal(mask, (data > 0).astype(np.uint8))
        for label, name in enumerate(("CSF", "GM", "WM"), start=1):
            volume = float(row[f"{name}_ml"])
            assert volume == pytest.approx((data == label).sum() * voxel_ml, abs=1e-2)
            assert float(row[f"{name}_ml_low"]) <= volume <= float(row[f"{name}_ml_high"])
        assert 0.0 < float(row["confidence"]) <= 1.0

    _check_report_in_browser(tmp_path / "report.html", scan_ids=sorted(rows))


def _check_report_in_browser(report: Path, scan_ids: list[str]) -> None:
    text = report.read_text()
    assert "http://" not in text and "https://" not in text.replace("https://github.com/torchsci", "")
    with Browser() as open_page:
        page = open_page(report)
        assert page.errors() == []
        assert page.evaluate("document.querySelectorAll('#volumes tbody tr').length") == len(scan_ids)
        loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert loaded == [True] * len(scan_ids)
        links = page.evaluate("Array.from(document.querySelectorAll('#volumes tbody a')).map(a => a.hash)")
        assert links == [f"#scan-{s}" for s in scan_ids]
        assert page.evaluate(f"!!document.getElementById('scan-{scan_ids[0]}')")
        # Sorting by TIV (third column) orders the rows by it; a second click reverses.
        tiv = "Array.from(document.querySelectorAll('#volumes tbody tr')).map(r => parseFloat(r.cells[2].dataset.value))"
        page.evaluate("document.querySelectorAll('#volumes th')[2].click()")
        ascending = page.evaluate(tiv)
        assert ascending == sorted(ascending)
        page.evaluate("document.querySelectorAll('#volumes th')[2].click()")
        assert page.evaluate(tiv) == sorted(ascending, reverse=True)
        shot = page.screenshot(ARTIFACTS / "neuro_study_report.png")
        assert page.errors() == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_the_browser_check_sees_script_errors_and_broken_images(tmp_path):
    page_file = tmp_path / "broken.html"
    page_file.write_text("<!DOCTYPE html><html><body><img src='data:image/png;base64,AAAA'>"
                         "<script>notAFunction();</script></body></html>")
    with Browser() as open_page:
        page = open_page(page_file)
        assert any("notAFunction" in e for e in page.errors())
        assert page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)") == [False]


def test_participant_and_session_labels_select_scans(bids_root):
    scans, root = find_scans([bids_root], participant_label=["sub-02"], session_label=["2"])
    assert root == bids_root.resolve() and [s.scan_id for s in scans] == ["sub-02_ses-2"]
    assert scans[0].folder == Path("sub-02/ses-2/anat")
    scans, _ = find_scans([bids_root], participant_label=["01"])
    assert [s.scan_id for s in scans] == ["sub-01"]
    from torchsci.errors import ConfigError

    with pytest.raises(ConfigError, match="no participant 07"):
        find_scans([bids_root], participant_label=["07"])


def test_shards_split_the_sorted_list_into_disjoint_parts():
    scans = [StudyScan(Path(f"/d/{name}.nii.gz"), name) for name in ("c", "a", "e", "b", "d", "f", "g")]
    parts = [shard(scans, i, 3) for i in range(3)]
    ids = [[s.scan_id for s in p] for p in parts]
    assert ids == [["a", "d", "g"], ["b", "e"], ["c", "f"]]
    assert [[s.scan_id for s in shard(list(reversed(scans)), i, 3)] for i in range(3)] == ids
    from torchsci.errors import ConfigError

    with pytest.raises(ConfigError, match="0 <= i < n"):
        shard(scans, 3, 3)


@pytest.fixture
def flat_folder(tmp_path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    scans = offline_scans()
    for name in ("mni4", "lps", "anat"):
        nib.save(scans[name], folder / f"{name}.nii.gz")
    (folder / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    return folder


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_kill_and_rerun_skips_what_was_done_and_isolates_a_broken_scan(flat_folder, trained_checkpoint, tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "torchsci.cli", "neuro", "segment", str(flat_folder), "-o", str(out),
            "--model", str(trained_checkpoint), "--jobs", "1"]
    process = subprocess.Popen(argv, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while not list(out.glob("*_dseg.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = sorted(out.glob("*_dseg.json"))
    assert first, "the first run finished no scan before it was killed"
    done_before = {p.name: p.stat().st_mtime_ns for p in first}

    rerun = _cli(str(flat_folder), "-o", str(out), "--model", str(trained_checkpoint), cwd=tmp_path)
    assert rerun.returncode == 1, rerun.stderr[-3000:]  # broken.nii.gz failed; the exit code says so
    failures = [line for line in rerun.stderr.splitlines() if "failed:" in line]
    assert len(failures) == 1 and "broken.nii.gz" in failures[0] and "gzip" in failures[0]
    assert f"{3 - len(done_before)} segmented, {len(done_before)} already done, 1 failed of 4" in rerun.stderr
    assert not [p for p in out.rglob(".tmp-*") if "volumes" not in p.name]  # half-written files of the kill cleared
    for name, mtime in done_before.items():
        assert (out / name).stat().st_mtime_ns == mtime  # not segmented again
    rows = {r["scan"]: r for r in _table(out / "volumes.tsv")}
    assert sorted(rows) == ["anat", "broken", "lps", "mni4"]
    assert rows["broken"]["status"] == "failed" and "broken.nii.gz" in rows["broken"]["reason"]
    assert all(rows[s]["status"] == "ok" for s in ("anat", "lps", "mni4"))
    assert not list(out.glob("broken*"))
    assert sorted(p.name for p in out.glob("*_dseg.nii.gz")) == [
        "anat_desc-tissue_dseg.nii.gz", "lps_desc-tissue_dseg.nii.gz", "mni4_desc-tissue_dseg.nii.gz"]

    # A scan recorded with another torchsci version is segmented again; the others are skipped.
    sidecar = out / "lps_desc-tissue_dseg.json"
    recorded = json.loads(sidecar.read_text())
    recorded["torchsci"]["provenance"]["version"] = "0.0.0"
    sidecar.write_text(json.dumps(recorded))
    (flat_folder / "broken.nii.gz").unlink()
    result = segment_study([flat_folder], out, model=trained_checkpoint, progress=False)
    assert result.segmented == ["lps"] and sorted(result.skipped) == ["anat", "mni4"] and result.failed == []
    assert [r["scan"] for r in _table(out / "volumes.tsv")] == ["anat", "lps", "mni4"]


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TIMEOUT_S)
def test_mirror_intervals_and_a_csv_table_from_python(flat_folder, trained_checkpoint, tmp_path):
    result = segment_study([str(flat_folder / "anat.nii.gz"), str(flat_folder / "m*.nii.gz")], tmp_path / "out",
                           model=trained_checkpoint, interval="mirror", table=tmp_path / "volumes.csv", progress=False)
    assert result.segmented == ["anat", "mni4"] and result.table == tmp_path / "volumes.csv"
    rows = _table(tmp_path / "volumes.csv")
    assert [r["scan"] for r in rows] == ["anat", "mni4"]
    for row in rows:
        assert row["interval"] == "mirror"
        for name in ("TIV", "CSF", "GM", "WM"):
            assert float(row[f"{name}_ml_low"]) <= float(row[f"{name}_ml"]) <= float(row[f"{name}_ml_high"])


def test_outputs_beside_the_inputs_are_not_taken_for_inputs(flat_folder, trained_checkpoint):
    (flat_folder / "broken.nii.gz").unlink()
    before = sorted(p.name for p in flat_folder.iterdir())
    result = segment_study([flat_folder / "anat.nii.gz"], flat_folder, model=trained_checkpoint, progress=False)
    assert result.segmented == ["anat"] and (flat_folder / "anat_desc-tissue_dseg.nii.gz").is_file()
    scans, _ = find_scans([flat_folder], exclude=flat_folder)
    assert sorted(f"{s.scan_id}.nii.gz" for s in scans) == before


def test_single_file_command_is_unchanged_and_its_qc_has_legend_markers_and_the_file_name(
        flat_folder, trained_checkpoint, tmp_path):
    from torchsci.cli import main
    from torchsci_neuro.report import qc_overlay

    scan, out = flat_folder / "lps.nii.gz", tmp_path / "single"
    assert main(["neuro", "segment", str(scan), "-o", str(out / "labels.nii.gz"), "--model",
                 str(trained_checkpoint), "--qc", str(out / "qc.png"), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["labels.nii.gz", "qc.png"]
    figure = qc_overlay(scan, nib.load(out / "labels.nii.gz"), "tissue")
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert texts.count("L") == 2 and texts.count("R") == 2 and "A" in texts and "P" in texts
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["1 CSF", "2 GM", "3 WM"]
    assert figure._suptitle.get_text() == "lps.nii.gz"


def test_outliers_are_flagged_by_robust_z_and_low_scores_only_when_low():
    from torchsci_neuro.report import outlier_flags

    rows = [{"status": "ok", "GM_ml": 600.0 + 10 * i, "confidence": 0.90 + 0.01 * (i % 3)} for i in range(6)]
    rows[2]["GM_ml"] = 1300.0  # a failed segmentation calling the skull gray matter
    rows[4]["confidence"] = 0.40
    rows[5]["confidence"] = 0.99  # high confidence is no problem
    rows.append({"status": "failed", "GM_ml": None, "confidence": None})
    flags = outlier_flags(rows, ["GM_ml", "confidence"])
    assert flags[2].startswith("GM_ml z=+") and flags[4].startswith("confidence z=-")
    assert [i for i, f in enumerate(flags) if f] == [2, 4]
