"""Segmenting a study: many scans through the one-scan pipeline, resumable, in parallel, into one table.

Each scan goes through :func:`torchsci_neuro.inference.segment` (there is no second inference path);
this module adds what a study needs around it: the scans' list (:mod:`torchsci_neuro.derivatives`),
skipping scans already done with the same model, one process per job with the model loaded once and
``threads = cores // jobs``, isolation of a failing scan (a ``failed`` row; the others go on), a
progress line per scan when stderr is not a terminal (no carriage returns in a batch log), the study's
volumes table, and the HTML report (:mod:`torchsci_neuro.report`).

A scan is done when its sidecar JSON (written last, atomically, after the images) names the same
torchsci version, model sha256, task and interval method as this run: a killed run re-run continues
where it stopped, and a new model re-segments everything.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from torchsci.deprecation import renamed_arguments
from torchsci.errors import ConfigError, TorchsciError
from torchsci_neuro.derivatives import (
    StudyScan,
    find_scans,
    shard,
    write_dataset_files,
    write_json,
    write_text,
)

INTERVALS = ("posterior", "mirror", "none")


@dataclass(frozen=True)
class StudySettings:
    """What every scan of a run is segmented with (``segment()``'s arguments) and how volumes get intervals."""

    task: str = "tissue"
    model: str | None = None
    device: str = "auto"
    overlap: float = 0.5
    batch_size: int = 2
    precision: str = "auto"
    interval: str = "posterior"
    mirror: bool = False
    threads: int | None = None
    refine: bool = True


@dataclass
class StudyResult:
    """What :func:`segment_study` did.

    Attributes
    ----------
    rows
        The volumes table's rows (one per scan, ``status`` ``"ok"`` or ``"failed"``).
    table, report
        The files written (``report`` is ``None`` unless asked for).
    segmented, skipped, failed
        Scan ids segmented in this run, found done (same model) and skipped, and failed.
    """

    rows: list[dict[str, Any]]
    table: Path
    report: Path | None = None
    segmented: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def model_identity(model: str | os.PathLike | None) -> dict[str, str]:
    """Name and sha256 of the model a study runs: the shipped weights' registry entry, or a checkpoint file's.

    Examples
    --------
    >>> model_identity(None)["name"]
    'neuro/unet3d-tissue'
    """
    if model is None:
        from torchsci_neuro.inference import PRETRAINED_MODEL
        from torchsci_neuro.models import TISSUE_WEIGHTS

        return {"name": PRETRAINED_MODEL, "sha256": TISSUE_WEIGHTS["sha256"]}
    path = Path(model)
    if not path.is_file():
        raise ConfigError(f"--model {path}: no such checkpoint file.")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"name": path.name, "sha256": digest.hexdigest()}


def _version() -> str:
    import torchsci

    return torchsci.__version__


def _outputs(scan: StudyScan, task: str) -> dict[str, Path]:
    files = {"mask": scan.output("desc-brain_mask.nii.gz"), "qc": scan.figure(f"desc-{task}_qc.png")}
    if task == "tissue":
        files["dseg"] = scan.output("desc-tissue_dseg.nii.gz")
    # The sidecar of the main image: written last, it marks the scan as done.
    files["sidecar"] = scan.output("desc-tissue_dseg.json" if task == "tissue" else "desc-brain_mask.json")
    return files


def _provenance(scan: StudyScan, settings: StudySettings, identity: dict[str, str]) -> dict[str, Any]:
    stat = scan.source.stat()
    return {"version": _version(), "model": identity["name"], "model_sha256": identity["sha256"],
            "task": settings.task, "interval": settings.interval, "mirror": settings.mirror,
            "refine": settings.refine, "overlap": settings.overlap, "precision": settings.precision, "source_bytes": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns}


def done_row(scan: StudyScan, out_dir: Path, settings: StudySettings, identity: dict[str, str]) -> dict | None:
    """The table row of a scan already segmented with this model and settings (``None`` if it must be (re)done)."""
    files = _outputs(scan, settings.task)
    sidecar = out_dir / files["sidecar"]
    if not all((out_dir / f).is_file() for f in files.values()):
        return None
    try:
        recorded = json.loads(sidecar.read_text())["torchsci"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if recorded.get("provenance") != _provenance(scan, settings, identity):
        return None
    return recorded.get("row")


# One network per worker process, loaded by _init_worker (or once in-process for n_jobs=1).
_NETWORK: dict[str, Any] = {}


def _init_worker(model: Any, threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from torchsci_neuro.inference import resolve_model

    _NETWORK["model"] = resolve_model(model)


def _segment_scan(scan: Any, settings: StudySettings, posteriors: bool) -> tuple[Any, np.ndarray | None, float | None]:
    """Labels, posteriors (or ``None``) and the scan's quality score, from the one-scan :func:`segment`."""
    import warnings

    from torchsci_neuro.inference import segment
    from torchsci_neuro.quality import LowQualityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowQualityWarning)  # the table's quality column and flags report it
        result = segment(scan, task=settings.task, device=settings.device, model=_NETWORK["model"],
                         overlap=settings.overlap, batch_size=settings.batch_size, precision=settings.precision,
                         mirror=settings.mirror, progress=False, probabilities=posteriors, refine=settings.refine)
    labels, probs = result if posteriors else (result, None)
    quality = (getattr(labels, "extra", None) or {}).get("quality")
    return labels, (None if probs is None else np.asarray(probs)), (None if quality is None else float(quality["score"]))


def _mirrored(scan: Any) -> Any:
    """The scan mirrored left-right in the world (its data flipped along the axis closest to x)."""
    import nibabel as nib

    from torchsci_neuro.io import Scan

    axis = int(np.flatnonzero(nib.orientations.io_orientation(scan.affine)[:, 0] == 0)[0])
    return Scan(data=np.ascontiguousarray(np.flip(scan.data, axis)), affine=scan.affine, header=scan.header,
                source=scan.source), axis


def process_scan(scan: StudyScan, out_dir: Path, settings: StudySettings, identity: dict[str, str]) -> dict[str, Any]:
    """Segment one scan, write its derivatives atomically (images, QC figure, then the sidecar), return its row.

    Any error becomes a ``failed`` row with a one-line reason; nothing of the scan's is left half-written.
    """
    import nibabel as nib

    from torchsci.io import atomic_output
    from torchsci_neuro import volumes
    from torchsci_neuro.inference import LABEL_NAMES
    from torchsci_neuro.io import load_scan
    from torchsci_neuro.report import qc_figure

    start = time.perf_counter()
    row = base_row(scan, identity, settings)
    try:
        image = load_scan(scan.source)
        labels, probs, quality = _segment_scan(image, settings, posteriors=True)
        data = np.asarray(labels.dataobj)
        names = LABEL_NAMES[settings.task]
        voxel_ml = image.voxel_volume_ml
        hard = volumes.hard_volumes(data, voxel_ml, names)
        intervals: dict[str, tuple[float, float]] = {}
        method = "mirror" if settings.interval == "posterior" and probs is None else settings.interval
        row["interval"] = method
        if method == "posterior":
            intervals = volumes.posterior_intervals(data, probs, voxel_ml, names)
        elif method == "mirror":
            mirrored, axis = _mirrored(image)
            flipped, _, _ = _segment_scan(mirrored, settings, posteriors=False)
            intervals = volumes.mirror_intervals(data, np.flip(np.asarray(flipped.dataobj), axis), voxel_ml, names)
        for name, value in hard.items():
            row[f"{name}_ml"] = round(value, 3)
            if name in intervals:
                row[f"{name}_ml_low"], row[f"{name}_ml_high"] = (round(v, 3) for v in intervals[name])
        row["confidence"] = volumes.confidence(data, probs) if probs is not None else None
        row["quality"] = quality
        files = _outputs(scan, settings.task)
        for name in files.values():
            # A run killed mid-write leaves its temporary file; this scan has one writer, so clear its own.
            for stale in (out_dir / name).parent.glob(f".tmp-*-{name.name}"):
                stale.unlink(missing_ok=True)
        mask = nib.Nifti1Image((data > 0).astype(np.uint8), labels.affine, labels.header)
        for key, img in (("dseg", labels), ("mask", mask)):
            if key in files:
                with atomic_output(out_dir / files[key]) as tmp:
                    nib.save(img, tmp)
        qc_figure(image, labels, settings.task, out_dir / files["qc"], title=scan.scan_id, dpi=70)
        row["seconds"] = round(time.perf_counter() - start, 2)
        sidecar = {"Sources": [str(scan.source)],
                   "torchsci": {"provenance": _provenance(scan, settings, identity), "row": row}}
        write_json(out_dir / files["sidecar"], sidecar)
    except Exception as exc:  # noqa: BLE001 (one scan's failure, whatever it is, must not stop the study)
        reason = str(exc) if isinstance(exc, TorchsciError) else f"{type(exc).__name__}: {exc}"
        row.update(status="failed", reason=" ".join(reason.split()), seconds=round(time.perf_counter() - start, 2))
    return row


def base_row(scan: StudyScan, identity: dict[str, str], settings: StudySettings) -> dict[str, Any]:
    return {"scan": scan.scan_id, "subject": scan.subject, "session": scan.session, "source": str(scan.source),
            "status": "ok", "reason": "", "model": identity["name"], "model_sha256": identity["sha256"],
            "torchsci_version": _version(), "interval": settings.interval}


def _run_in_worker(scan: StudyScan, out_dir: Path, settings: StudySettings, identity: dict[str, str]) -> dict:
    return process_scan(scan, out_dir, settings, identity)


class _Progress:
    """A tqdm bar over scans on a terminal; one plain line per scan (with the ETA) in a log file; nothing if quiet."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.enabled = enabled and total > 0
        self.bar = None
        if self.enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="study", unit="scan")

    def update(self, row: dict) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        print(f"[{self.done}/{self.total}] {row['scan']}: {row['status']} ({row.get('seconds', 0):.1f} s), "
              f"elapsed {elapsed:.0f} s, ETA {eta:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def table_columns(task: str) -> list[str]:
    """The volumes table's columns, in order."""
    from torchsci_neuro.inference import LABEL_NAMES

    columns = ["scan", "subject", "session", "status", "reason"]
    for name in ("TIV", *LABEL_NAMES[task][1:]):
        columns += [f"{name}_ml", f"{name}_ml_low", f"{name}_ml_high"]
    return columns + ["confidence", "quality", "flags", "interval", "model", "model_sha256", "torchsci_version",
                      "seconds", "source"]


def write_table(path: Path, rows: Sequence[dict], task: str) -> Path:
    """The study's volumes table: tab-separated for ``.tsv``, comma-separated otherwise (atomically)."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=table_columns(task), delimiter="\t" if path.suffix == ".tsv" else ",",
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: ("n/a" if v is None and path.suffix == ".tsv" else v) for k, v in row.items()} for row in rows])
    return write_text(path, buffer.getvalue())


@renamed_arguments(jobs="n_jobs")
def segment_study(inputs: Sequence[str | os.PathLike] | str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  task: str = "tissue", model: str | os.PathLike | None = None, device: str = "auto", n_jobs: int = 1,
                  shard_index: tuple[int, int] | None = None, participant_label: Sequence[str] | None = None,
                  session_label: Sequence[str] | None = None, interval: str = "posterior",
                  table: str | os.PathLike | None = None, report: str | os.PathLike | None = None,
                  mirror: bool = False, overlap: float = 0.5, batch_size: int = 2, precision: str = "auto",
                  progress: bool = False, refine: bool = True) -> StudyResult:
    """Segment every scan of a study into BIDS derivatives, one volumes table and (optionally) an HTML report.

    Parameters
    ----------
    inputs
        NIfTI files, glob patterns, folders (their ``.nii``/``.nii.gz`` files), or one BIDS dataset root
        (a folder with ``dataset_description.json``; its ``sub-*/[ses-*/]anat/*_T1w`` images).
    out_dir
        The derivatives folder; for a BIDS dataset it defaults to ``<root>/derivatives/torchsci``.
    task, model, device, mirror, overlap, batch_size, precision, refine
        As for :func:`torchsci_neuro.inference.segment` (``model`` a checkpoint path or ``None`` for the
        shipped weights).
    n_jobs
        Scans segmented at once, each in its own process with ``cores // n_jobs`` threads (``jobs=`` is the
        old name; it still works, with a ``DeprecationWarning``).
    shard_index
        ``(i, n)``: only the i-th of n interleaved parts of the sorted scan list (SLURM array jobs).
    participant_label, session_label
        BIDS filters (``01`` or ``sub-01``).
    interval
        ``"posterior"`` (from the class posteriors), ``"mirror"`` (left-right test-time augmentation, 2x
        the time) or ``"none"``; see :mod:`torchsci_neuro.volumes`.
    table
        The volumes table (``.tsv`` or ``.csv``); default ``out_dir/volumes.tsv``.
    report
        Also write this self-contained HTML QC report.
    progress
        A progress bar on a terminal, one line per scan otherwise.

    Returns
    -------
    StudyResult
        The rows and files; ``result.failed`` lists the scans that failed (the others are done regardless).

    Examples
    --------
    >>> result = segment_study("bids/", n_jobs=2, report="qc.html")  # doctest: +SKIP
    >>> result.rows[0]["GM_ml"], result.rows[0]["GM_ml_low"], result.rows[0]["GM_ml_high"]  # doctest: +SKIP
    (612.3, 580.1, 650.9)
    """
    from torchsci_neuro.inference import LABEL_NAMES, TASKS
    from torchsci_neuro.report import outlier_flags, write_report

    if task not in TASKS:
        raise ConfigError(f"task={task!r}: use one of {', '.join(TASKS)}.")
    if interval not in INTERVALS:
        raise ConfigError(f"interval={interval!r}: use one of {', '.join(INTERVALS)}.")
    if n_jobs < 1:
        raise ConfigError(f"--jobs {n_jobs} (n_jobs): use 1 or more.")
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    scans, bids_root = find_scans(inputs, participant_label, session_label, exclude=out_dir)
    if out_dir is None:
        if bids_root is None:
            raise ConfigError("an output folder is needed (-o DIR) for scans that are not a BIDS dataset.")
        out_dir = bids_root / "derivatives" / "torchsci"
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"-o {out_dir}: is a file; a study writes BIDS derivatives into a folder, so give a folder "
                          f"(new or existing), e.g. -o {out_dir.parent / 'derivatives'}.")
    identity = model_identity(model)
    settings = StudySettings(task=task, model=None if model is None else str(model), device=device, overlap=overlap,
                             batch_size=batch_size, precision=precision, interval=interval, mirror=mirror,
                             threads=max(1, _cores() // n_jobs), refine=refine)
    write_dataset_files(out_dir, task, LABEL_NAMES[task], {
        "Name": "torchsci", "Version": _version(), "CodeURL": "https://github.com/torchsci/torchsci",
        "Description": f"torchsci neuro segment, model {identity['name']} (sha256 {identity['sha256']}), "
                       f"task {task}, volume intervals: {interval}"}, bids_root)
    mine = shard(scans, *shard_index) if shard_index else scans
    result = StudyResult(rows=[], table=Path(table) if table else out_dir / "volumes.tsv")
    rows: dict[str, dict] = {}
    todo = []
    for scan in mine:
        row = done_row(scan, out_dir, settings, identity)
        if row is None:
            todo.append(scan)
        else:
            rows[scan.scan_id] = row
            result.skipped.append(scan.scan_id)
    bar = _Progress(len(todo), progress)
    try:
        for row in _run(todo, out_dir, settings, identity, n_jobs):
            rows[row["scan"]] = row
            (result.segmented if row["status"] == "ok" else result.failed).append(row["scan"])
            if row["status"] != "ok":
                reason = row["reason"] if row["source"] in row["reason"] else f"{row['source']}: {row['reason']}"
                print(f"torchsci neuro segment: failed: {reason}", file=sys.stderr, flush=True)
            bar.update(row)
    finally:
        bar.close()
    # Scans of other shards that are already done belong in the table too: the last shard writes it whole.
    for scan in scans:
        if scan.scan_id not in rows:
            row = done_row(scan, out_dir, settings, identity)
            if row is not None:
                rows[scan.scan_id] = row
    ordered = [rows[s.scan_id] for s in scans if s.scan_id in rows]
    keys = [f"{n}_ml" for n in ("TIV", *LABEL_NAMES[task][1:])] + ["confidence", "quality"]
    for row, flags in zip(ordered, outlier_flags(ordered, keys), strict=True):
        row["flags"] = flags
    result.rows = ordered
    write_table(result.table, ordered, task)
    if report is not None:
        figures = {s.scan_id: out_dir / _outputs(s, task)["qc"] for s in scans}
        result.report = write_report(report, ordered, {k: v for k, v in figures.items() if v.is_file()}, task)
    return result


def _run(todo: list[StudyScan], out_dir: Path, settings: StudySettings, identity: dict[str, str], jobs: int):
    """Yield each scan's row as it finishes: in this process for one job, in ``jobs`` spawned processes otherwise."""
    if not todo:
        return
    if jobs == 1 or len(todo) == 1:
        _init_worker(settings.model, None)
        for scan in todo:
            yield process_scan(scan, out_dir, settings, identity)
        return
    import multiprocessing

    # spawn, not fork: a forked child inherits torch's thread pools in whatever state they were.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context, initializer=_init_worker,
                             initargs=(settings.model, settings.threads)) as pool:
        futures = {pool.submit(_run_in_worker, scan, out_dir, settings, identity): scan for scan in todo}
        for future in as_completed(futures):
            scan = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 (a worker killed by the OS: its scan fails, the rest go on)
                row = base_row(scan, identity, settings)
                row.update(status="failed", reason=f"the worker process died ({type(exc).__name__}: {exc})")
                yield row


