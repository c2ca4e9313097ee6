"""torchsci.io.atomic_output: all-or-nothing writes whose files are as readable as a plain open() makes them."""

from __future__ import annotations

import os
import stat

from torchsci.io import atomic_output


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_output_gets_the_umask_mode_not_mkstemps_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "scores.csv") as tmp:
            tmp.write_text("score\n0.5\n")
        with open(tmp_path / "plain.csv", "w") as fh:
            fh.write("x\n")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "scores.csv") == _mode(tmp_path / "plain.csv") == 0o644


def test_a_replaced_output_keeps_its_mode(tmp_path):
    out = tmp_path / "labels.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    with atomic_output(out) as tmp:
        tmp.write_text("new\n")
    assert out.read_text() == "new\n"
    assert _mode(out) == 0o640

