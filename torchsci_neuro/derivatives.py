"""A study's files: which scans go in (files, globs, a folder, a BIDS dataset) and where their outputs go.

This is the layout layer of the study workflow (:mod:`torchsci_neuro.study` runs it): it turns what the
user typed into a sorted list of :class:`StudyScan` (one per T1w image, with a stable id), names each
scan's outputs in the BIDS-derivatives layout (``sub-XX/[ses-YY/]anat/sub-XX_[ses-YY_]desc-tissue_dseg.nii.gz``
for a BIDS dataset; the same names side by side for a plain folder), and writes the dataset-level files
(``dataset_description.json``, ``dseg.tsv``). Every file is written atomically (temporary file + rename).
A BIDS dataset is read with pybids, not with a walker of our own.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torchsci.errors import ConfigError, DataError
from torchsci.io import atomic_output

NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: Colours of the labels in QC images and in ``dseg.tsv`` (background is never drawn).
LABEL_COLOURS = {"tissue": ("#000000", "#1f77b4", "#ff7f0e", "#2ca02c"), "brain_mask": ("#000000", "#d62728")}
BIDS_VERSION = "1.9.0"


@dataclass(frozen=True)
class StudyScan:
    """One scan of a study and the stem its outputs share.

    Attributes
    ----------
    source
        The input NIfTI file.
    scan_id
        Unique name in the study: the file name without ``.nii[.gz]`` (and without ``_T1w`` in BIDS),
        e.g. ``sub-01_ses-1`` or ``case-3``.
    subject, session
        BIDS labels (``None`` outside BIDS or without sessions).
    folder
        Where its outputs go, relative to the output folder: ``sub-01/ses-1/anat`` in BIDS, ``.`` otherwise.
    """

    source: Path
    scan_id: str
    subject: str | None = None
    session: str | None = None
    folder: Path = Path(".")

    def output(self, suffix: str) -> Path:
        """Relative path of one output, e.g. ``output("desc-tissue_dseg.nii.gz")``."""
        return self.folder / f"{self.scan_id}_{suffix}"

    def figure(self, suffix: str) -> Path:
        """Relative path of a figure: ``sub-XX/figures/...`` in BIDS (as fMRIPrep does), ``figures/...`` otherwise."""
        base = Path(f"sub-{self.subject}") if self.subject else Path(".")
        return base / "figures" / f"{self.scan_id}_{suffix}"


def _strip_nifti(name: str) -> str:
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_output_name(name: str) -> bool:
    """Whether a file name is one of the images a study writes (``*_desc-tissue_dseg.nii.gz``, ``*_desc-brain_mask.nii.gz``).

    Examples
    --------
    >>> is_output_name("case-1_desc-tissue_dseg.nii.gz"), is_output_name("case-1.nii.gz")
    (True, False)
    """
    return _strip_nifti(name).endswith(("_desc-tissue_dseg", "_desc-brain_mask"))


def is_bids_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a raw BIDS dataset: a folder with a ``dataset_description.json`` that is not a
    derivative's (a study written into its input folder leaves one, and stays a plain folder)."""
    description = Path(path) / "dataset_description.json"
    if not description.is_file():
        return False
    try:
        return json.loads(description.read_text()).get("DatasetType", "raw") != "derivative"
    except (OSError, ValueError, AttributeError):
        return True  # pybids then says what is wrong with it


def bids_scans(root: str | os.PathLike, participant_label: Sequence[str] | None = None,
               session_label: Sequence[str] | None = None) -> list[StudyScan]:
    """The T1w images of a BIDS dataset (``sub-*/[ses-*/]anat/*_T1w.nii[.gz]``), read with pybids.

    ``participant_label``/``session_label`` keep only those subjects/sessions (with or without the
    ``sub-``/``ses-`` prefix, as BIDS apps accept them). The ``derivatives/`` folder is not indexed.
    """
    from bids import BIDSLayout  # lazy: pybids loads SQLAlchemy; only a BIDS input needs it

    root = Path(root).resolve()
    try:
        layout = BIDSLayout(str(root), validate=True, derivatives=False)
    except Exception as exc:  # pybids raises its own BIDSValidationError and ValueErrors for broken datasets
        raise DataError(f"{root}: not a readable BIDS dataset ({type(exc).__name__}: {exc}); check its "
                        "dataset_description.json (Name and BIDSVersion are required).") from exc
    query: dict = {"suffix": "T1w", "datatype": "anat", "extension": [".nii", ".nii.gz"], "return_type": "object"}
    subjects = [s.removeprefix("sub-") for s in participant_label or ()]
    sessions = [s.removeprefix("ses-") for s in session_label or ()]
    if subjects:
        missing = sorted(set(subjects) - set(layout.get_subjects()))
        if missing:
            raise ConfigError(f"{root}: no participant {', '.join(missing)} (it has "
                              f"{', '.join(layout.get_subjects()) or 'none'}); fix --participant-label.")
        query["subject"] = subjects
    if sessions:
        query["session"] = sessions
    scans = []
    for image in layout.get(**query):
        path = Path(image.path)
        entities = image.get_entities()
        stem = _strip_nifti(path.name)
        scans.append(StudyScan(source=path, scan_id=stem.removesuffix("_T1w"), subject=entities.get("subject"),
                               session=entities.get("session"), folder=path.parent.relative_to(root)))
    if not scans:
        raise DataError(f"{root}: no T1w image (sub-*/[ses-*/]anat/*_T1w.nii[.gz]) matches"
                        + (f" participant {subjects}" if subjects else "") + (f" session {sessions}" if sessions else "")
                        + "; check the labels or the dataset's layout.")
    return sorted(scans, key=lambda s: s.scan_id)


def file_scans(inputs: Sequence[str | os.PathLike], exclude: str | os.PathLike | None = None) -> list[StudyScan]:
    """Scans from files, glob patterns (``**`` recurses) and folders (their own ``.nii``/``.nii.gz`` files).

    Outputs of ours under ``exclude`` (the output folder) are left out, so a re-run never segments them.
    Two inputs with the same name are an error: their outputs would collide in the flat layout.
    """
    excluded = Path(exclude).resolve() if exclude is not None else None
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        if Path(text).is_dir():
            found += sorted(p for p in Path(text).iterdir() if p.is_file() and p.name.lower().endswith(NIFTI_SUFFIXES))
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise DataError(f"{text}: the pattern matches no file; check it (quote it so the shell does not expand it).")
            found += matches
        elif Path(text).is_file():
            found.append(Path(text))
        else:
            raise DataError(f"{text}: no such file or folder.")
    scans: dict[str, StudyScan] = {}
    for path in found:
        if not path.name.lower().endswith(NIFTI_SUFFIXES):
            raise DataError(f"{path}: not a .nii or .nii.gz file; convert it to NIfTI (e.g. with dcm2niix).")
        if excluded is not None and excluded in path.resolve().parents and is_output_name(path.name):
            continue
        scan = StudyScan(source=path, scan_id=_strip_nifti(path.name))
        other = scans.get(scan.scan_id)
        if other is not None and other.source.resolve() != path.resolve():
            raise DataError(f"{path} and {other.source} have the same name, so their outputs would collide; "
                            "rename one, or run them into different output folders.")
        scans[scan.scan_id] = scan
    if not scans:
        raise DataError(f"{', '.join(map(str, inputs))}: no .nii or .nii.gz scan found.")
    return sorted(scans.values(), key=lambda s: s.scan_id)


def find_scans(inputs: Sequence[str | os.PathLike], participant_label: Sequence[str] | None = None,
               session_label: Sequence[str] | None = None, exclude: str | os.PathLike | None = None
               ) -> tuple[list[StudyScan], Path | None]:
    """The study's scans and, for a BIDS dataset root (one folder with ``dataset_description.json``), the root."""
    if len(inputs) == 1 and is_bids_root(inputs[0]):
        return bids_scans(inputs[0], participant_label, session_label), Path(inputs[0]).resolve()
    if participant_label or session_label:
        raise ConfigError("--participant-label/--session-label need a BIDS dataset (a folder with "
                          "dataset_description.json) as the only input.")
    return file_scans(inputs, exclude=exclude), None


def shard(scans: Sequence[StudyScan], index: int, count: int) -> list[StudyScan]:
    """The ``index``-th of ``count`` interleaved parts of ``scans`` (sorted by id, so every node agrees).

    Examples
    --------
    >>> s = [StudyScan(Path(f"{i}.nii"), f"s{i}") for i in range(5)]
    >>> [x.scan_id for x in shard(s, 1, 2)]
    ['s1', 's3']
    """
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {index}/{count}: use i/n with 0 <= i < n (SLURM: $SLURM_ARRAY_TASK_ID/n "
                          "with --array=0-(n-1)).")
    ordered = sorted(scans, key=lambda s: s.scan_id)
    return ordered[index::count]


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, value: dict) -> Path:
    """Write ``value`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def write_dataset_files(out_dir: str | os.PathLike, task: str, label_names: Sequence[str], generated_by: dict,
                        bids_root: Path | None) -> None:
    """``dataset_description.json`` (a BIDS derivative, ``GeneratedBy`` naming torchsci and the model) and
    ``dseg.tsv`` (index, name, colour of each label) in ``out_dir``."""
    out_dir = Path(out_dir)
    description = {"Name": f"torchsci neuro {task} segmentation", "BIDSVersion": BIDS_VERSION,
                   "DatasetType": "derivative", "GeneratedBy": [generated_by]}
    if bids_root is not None:
        description["SourceDatasets"] = [{"URL": bids_root.as_uri()}]
    write_json(out_dir / "dataset_description.json", description)
    colours = LABEL_COLOURS[task]
    rows = ["index\tname\tcolor"] + [f"{i}\t{name}\t{colours[i]}" for i, name in enumerate(label_names) if i > 0]
    write_text(out_dir / "dseg.tsv", "\n".join(rows) + "\n")
