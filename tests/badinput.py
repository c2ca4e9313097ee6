"""Shared steps of the tests/<field>/test_bad_inputs.py corpora: run a command, check the one line, checksum inputs.

Each case of a corpus runs the real ``torchsci`` command line in-process (``torchsci.cli.main``, the same
function the executable calls), so an exception that is not a :class:`torchsci.TorchsciError` escapes into
the test as the traceback a user would have seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import torchsci.cli


def run_cli(args: Sequence[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of ``torchsci <args>``."""
    capsys.readouterr()
    try:
        code = torchsci.cli.main([str(a) for a in args])
    except SystemExit as exc:  # hydra's task and argparse leave through sys.exit
        code = exc.code if isinstance(exc.code, int) else 1
    return int(code or 0), capsys.readouterr().err


def checksums(paths: Iterable[Path]) -> dict[str, str]:
    """sha256 of every file under ``paths`` (files or folders)."""
    out = {}
    for path in paths:
        for f in sorted([path] if path.is_file() else path.rglob("*")):
            if f.is_file():
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def assert_one_clear_line(code: int, err: str, *needles: str) -> None:
    """Exit code 2, no traceback, and one error line that holds every needle (file name, problem)."""
    assert code == 2, f"exit code {code}; stderr:\n{err}"
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
