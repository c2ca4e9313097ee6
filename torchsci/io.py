"""Files a user owns: outputs that never overwrite an input, unique run folders, and tolerant CSV reading.

This is the layer every command goes through when it touches the user's files:

- :func:`atomic_output` refuses an output that is one of the command's inputs (same path, a symlink or a
  hard link to it), writes to a temporary file in the output's folder, fsyncs and renames it into place,
  so an interrupted command leaves either the old file or the new one, never half of one.
- :func:`make_run_dir` creates a run folder atomically (``os.mkdir``), adding ``-1``, ``-2``, ... when
  another run took the name first, so two runs started in the same second never share a folder.
- :func:`read_csv` reads CSV files as spreadsheets write them (UTF-8 with or without a BOM, ``,`` ``;``
  tab or ``|`` as delimiter) and turns every other kind of file (binary, not UTF-8, header only) into
  one :class:`~torchsci.errors.DataError` naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import csv
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from torchsci.errors import DataError, OutputError

PathLike = str | os.PathLike


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_output(path: PathLike, inputs: Iterable[PathLike] = (), *, suffixes: Sequence[str] | None = None,
                 what: str = "output") -> Path:
    """Check that ``path`` may be written: not one of ``inputs``, not a folder, and with an allowed suffix.

    Parameters
    ----------
    path
        The output file.
    inputs
        The files the command reads; writing over any of them (also through a symlink or hard link) is refused.
    suffixes
        Allowed endings (``(".nii", ".nii.gz")``); ``None`` allows any.
    what
        What the file holds, for the message (``"labels"``, ``"predictions"``).

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    torchsci.errors.OutputError
        With one line naming the file, the problem and the fix.

    Examples
    --------
    >>> import tempfile, os
    >>> from torchsci.io import check_output
    >>> scan = os.path.join(tempfile.mkdtemp(), "t1.nii.gz"); open(scan, "w").close()
    >>> check_output(scan, [scan])
    Traceback (most recent call last):
    ...
    torchsci.errors.OutputError: ...t1.nii.gz: the output is also an input of this command; writing it would destroy the input. Choose another output name.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputError(f"{path}: the output is also an input of this command; writing it would destroy the "
                              "input. Choose another output name.")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the {what}.")
    if suffixes is not None and not any(path.name.lower().endswith(s) for s in suffixes):
        example = path.name.split(".", 1)[0] + suffixes[0]
        raise OutputError(f"{path}: the {what} can only be written as {' or '.join(suffixes)}; "
                          f"name the file e.g. {example}.")
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: PathLike, inputs: Iterable[PathLike] = (), *, suffixes: Sequence[str] | None = None,
                  what: str = "output") -> Iterator[Path]:
    """Write a file all at once: yields a temporary path in the same folder, renamed to ``path`` on success.

    The temporary name ends with ``path``'s own name, so writers that pick the format from the suffix
    (nibabel, matplotlib, uproot) write the right one. If the block raises, the temporary file is
    removed and ``path`` is untouched. ``inputs``, ``suffixes`` and ``what`` are checked first, as in
    :func:`check_output`.

    Examples
    --------
    >>> import tempfile, os
    >>> from torchsci.io import atomic_output
    >>> out = os.path.join(tempfile.mkdtemp(), "predictions.csv")
    >>> with atomic_output(out, what="predictions") as tmp:
    ...     _ = tmp.write_text("prediction\\n1.5\\n")
    >>> open(out).read()
    'prediction\\n1.5\\n'
    """
    path = check_output(path, inputs, suffixes=suffixes, what=what)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{path.name}", dir=path.parent)
    # mkstemp makes the file owner-only (0600); give the output the mode a plain open() would (or keep the
    # mode of the file it replaces), so colleagues sharing the folder can read it.
    os.fchmod(fd, stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_run_dir(parent: PathLike, name: str) -> Path:
    """Create and return a new, empty run folder ``parent/name`` (``name-1``, ``name-2``, ... if taken).

    ``os.mkdir`` either creates the folder or fails, so two processes never get the same one.

    Examples
    --------
    >>> import tempfile
    >>> from torchsci.io import make_run_dir
    >>> root = tempfile.mkdtemp()
    >>> make_run_dir(root, "12-00-00_run").name, make_run_dir(root, "12-00-00_run").name
    ('12-00-00_run', '12-00-00_run-1')
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(10_000):
        candidate = parent / (name if n == 0 else f"{name}-{n}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise OutputError(f"{parent}: 10000 run folders named {name}-N already exist; choose run_dir= yourself.")


DELIMITERS = ",;\t|"


def _delimiter(header: str) -> str:
    present = [d for d in DELIMITERS if d in header]
    if len(present) <= 1:
        return present[0] if present else ","
    try:
        return csv.Sniffer().sniff(header, delimiters="".join(present)).delimiter
    except csv.Error:
        return ","


def find_column(header: Sequence[str], name: str) -> str | None:
    """The header's own spelling of the column ``name``: ``name`` itself if present, else the one column equal to
    it up to case (``SMILES`` for ``smiles``: exports name the same column differently), else ``None``.

    Examples
    --------
    >>> from torchsci.io import find_column
    >>> find_column(["SMILES", "logS"], "smiles"), find_column(["smiles", "SMILES"], "Smiles"), find_column(["x"], "y")
    ('SMILES', None, None)
    """
    if name in header:
        return name
    folded = [h for h in header if h.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def resolve_columns(path: PathLike, header: Sequence[str], names: Sequence[str]) -> list[str]:
    """The header's spelling of each of ``names`` (:func:`find_column`), or one :class:`~torchsci.errors.DataError`
    naming the file, the missing columns and the header (the error :func:`read_csv`'s ``required`` gives).

    Examples
    --------
    >>> from torchsci.io import resolve_columns
    >>> resolve_columns("m.csv", ["SMILES", "logS"], ["smiles", "logS"])
    ['SMILES', 'logS']
    """
    found = [find_column(header, n) for n in names]
    missing = [n for n, f in zip(names, found, strict=True) if f is None]
    if missing:
        raise _columns_not_found(path, missing, header)
    return [f for f in found if f is not None]


def _columns_not_found(path: PathLike, missing: Sequence[str], header: Sequence[str]) -> DataError:
    return DataError(f"{path}: column(s) {list(missing)} not found; the header has {list(header)}. Name the right "
                     "column or fix the header.")


def read_csv(path: PathLike, *, required: Sequence[str] = (), allow_empty: bool = False
             ) -> tuple[list[str], list[dict[str, str | None]]]:
    """Read a CSV file into its header and rows, the way spreadsheets write them.

    UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8"), and ``,``, ``;``, tab or ``|``
    as delimiter (read off the header line). Every other kind of file is one
    :class:`~torchsci.errors.DataError` naming the file: missing, binary, not UTF-8 (with the line and
    the byte), empty, only a header (unless ``allow_empty``), lacking a ``required`` column, or a row
    with more fields than the header.

    Parameters
    ----------
    path
        The CSV file.
    required
        Columns that must be in the header.
    allow_empty
        Accept a file with a header and no rows.

    Returns
    -------
    (list of str, list of dict)
        The header and one ``{column: text}`` per row (``None`` for the fields a short row lacks).

    Examples
    --------
    >>> import tempfile, os
    >>> from torchsci.io import read_csv
    >>> p = os.path.join(tempfile.mkdtemp(), "excel.csv")
    >>> _ = open(p, "wb").write("\\ufeffsmiles;logS\\r\\nCCO;0.5\\r\\n".encode())
    >>> read_csv(p, required=["smiles"])
    (['smiles', 'logS'], [{'smiles': 'CCO', 'logS': '0.5'}])
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file." if not path.exists() else f"{path}: is not a file.")
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path}: a binary file, not CSV text; export the table as CSV (UTF-8).")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as "
                        "UTF-8 (Excel: 'CSV UTF-8'; iconv -f latin1 -t utf-8).") from exc
    lines = text.splitlines()
    if not any(ln.strip() for ln in lines):
        raise DataError(f"{path}: the file is empty; it needs a header line and one row per entry.")
    first = next(ln for ln in lines if ln.strip())
    reader = csv.reader(lines[lines.index(first):], delimiter=_delimiter(first))
    try:
        header = [h.strip() for h in next(reader)]
        body = [r for r in reader if r]
    except csv.Error as exc:
        raise DataError(f"{path}: unreadable CSV ({exc}).") from exc
    missing = [c for c in required if c not in header]
    if missing:
        raise _columns_not_found(path, missing, header)
    if not body and not allow_empty:
        raise DataError(f"{path}: only a header: no data rows below it; add one row per entry.")
    rows = []
    for number, cells in enumerate(body, start=2):
        if len(cells) > len(header):
            raise DataError(f"{path}, row {number}: {len(cells)} fields but the header has {len(header)} "
                            "(an unquoted delimiter inside a value?).")
        rows.append(dict(zip(header, cells + [None] * (len(header) - len(cells)), strict=True)))
    return header, rows
