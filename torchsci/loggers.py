"""Run logs: a CSV of every logged value (readable by pandas and spreadsheets) and TensorBoard events.

Both cut back to the resumed step when a run resumes, so a killed-and-resumed run has the same log
as one never killed.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any


class CSVLog:
    """``metrics.csv``: one row per logged step, one column per value, rewritten atomically."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []

    def resume(self, step: int) -> None:
        """Keep only the rows logged up to ``step`` (those written after the checkpoint are replayed)."""
        if self.path.is_file():
            with open(self.path, newline="") as fh:
                self.rows = [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(fh)
                             if int(r["step"]) <= step]

    def log(self, values: dict[str, Any], step: int, epoch: int) -> None:
        self.rows.append({"step": step, "epoch": epoch, **values})

    def flush(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)


class TensorBoardLog:
    """TensorBoard scalars under ``<run_dir>/tensorboard`` (``tensorboard --logdir <run_dir>``)."""

    def __init__(self, folder: str | os.PathLike, resume_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # lazy: slow import, only when used

        self.writer = SummaryWriter(str(folder), purge_step=resume_step)

    def log(self, values: dict[str, Any], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
