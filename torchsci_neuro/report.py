"""Quality control: the three-plane overlay of one scan, outlier flags across a study, and the study's HTML report.

The overlay (:func:`qc_figure`) is the same picture for ``--qc qc.png`` and for each scan of a report:
sagittal, coronal and axial slices through the brain's centre in RAS order (the subject's left on the
image's left in coronal and axial views, marked L/R; anterior on the right of the sagittal view, marked
P/A), a colour legend, and a title with the scan's name only.

The report (:func:`write_report`) is one HTML file with everything inside (images as ``data:`` URIs, a few
lines of inline script to sort the table), so it opens offline and can be mailed or archived as is.
Outliers are flagged with a robust z-score (the modified z of Iglewicz and Hoaglin, ``0.6745 (x - median)
/ MAD``) of each volume across the study: no cut-offs to choose, and one failed scan cannot hide others
by inflating a standard deviation.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from torchsci.io import atomic_output
from torchsci_neuro.derivatives import LABEL_COLOURS, write_text
from torchsci_neuro.inference import LABEL_NAMES
from torchsci_neuro.io import Scan, load_scan

#: A volume whose absolute modified z-score is above this is flagged (Iglewicz and Hoaglin's recommendation).
OUTLIER_Z = 3.5


def qc_figure(scan: str | os.PathLike | nib.spatialimages.SpatialImage | Scan, labels: nib.spatialimages.SpatialImage,
              task: str, path: str | os.PathLike, title: str | None = None, dpi: int = 100) -> Path:
    """Save the labels over three orthogonal slices through the brain's centre as a PNG (atomically).

    Parameters
    ----------
    scan, labels
        The scan and its labels (same grid).
    task
        ``"tissue"`` or ``"brain_mask"`` (label names and colours of the legend).
    path
        The PNG to write.
    title
        Defaults to the scan file's name (never its folder).
    dpi
        Resolution (the figure is 12 x 4.4 inches).

    Examples
    --------
    >>> import tempfile
    >>> image = nib.Nifti1Image(np.random.rand(20, 22, 18).astype(np.float32), np.eye(4))
    >>> labels = nib.Nifti1Image((np.asarray(image.dataobj) > 0.5).astype(np.uint8), np.eye(4))
    >>> qc_figure(image, labels, "brain_mask", tempfile.mkdtemp() + "/qc.png", title="demo").suffix
    '.png'
    """
    import matplotlib.pyplot as plt

    figure = qc_overlay(scan, labels, task, title)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    plt.close(figure)
    return Path(path)


def qc_overlay(scan: str | os.PathLike | nib.spatialimages.SpatialImage | Scan, labels: nib.spatialimages.SpatialImage,
               task: str, title: str | None = None) -> Any:
    """The matplotlib figure :func:`qc_figure` saves (close it with ``matplotlib.pyplot.close``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    image = load_scan(scan)
    ornt = nib.orientations.io_orientation(image.affine)
    data = nib.orientations.apply_orientation(image.data, ornt)
    label_data = nib.orientations.apply_orientation(np.asarray(labels.dataobj).reshape(image.shape), ornt)
    foreground = np.argwhere(label_data > 0)
    centre = foreground.mean(axis=0).round().astype(int) if len(foreground) else np.array(data.shape) // 2
    low, high = np.percentile(data, [0.5, 99.5])
    names, colours = LABEL_NAMES[task], LABEL_COLOURS[task]
    cmap = ListedColormap(["#00000000", *colours[1:]])
    views = [("sagittal", data[centre[0]], label_data[centre[0]], ("P", "A")),
             ("coronal", data[:, centre[1]], label_data[:, centre[1]], ("L", "R")),
             ("axial", data[:, :, centre[2]], label_data[:, :, centre[2]], ("L", "R"))]
    # RAS arrays drawn transposed with origin='lower': the first axis runs left to right on screen, so
    # its low end (left, or posterior) is on the image's left.
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (name, slab, slab_labels, (left, right)) in zip(axes, views, strict=True):
        ax.imshow(slab.T, cmap="gray", origin="lower", vmin=low, vmax=high)
        ax.imshow(np.ma.masked_equal(slab_labels.T, 0), cmap=cmap, origin="lower", alpha=0.45, vmin=0,
                  vmax=len(names) - 1, interpolation="nearest")
        for x, text, align in ((0.02, left, "left"), (0.98, right, "right")):
            ax.text(x, 0.5, text, transform=ax.transAxes, color="yellow", fontsize=14, fontweight="bold",
                    ha=align, va="center")
        ax.set_title(name)
        ax.axis("off")
    figure.legend(handles=[Patch(facecolor=colours[i], label=f"{i} {names[i]}") for i in range(1, len(names))],
                  loc="lower center", ncol=len(names) - 1, frameon=False)
    figure.suptitle(title if title is not None else Path(image.source).name, fontsize=11)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return figure


def robust_z(values: Sequence[float | None]) -> list[float | None]:
    """Modified z-score of each value against the others' median and MAD; ``None`` where undefined.

    Undefined for missing values, for fewer than three values, and when the MAD is zero.

    Examples
    --------
    >>> [round(z, 1) for z in robust_z([10.0, 11.0, 9.0, 10.5, 30.0])]
    [-0.7, 0.7, -2.0, 0.0, 26.3]
    """
    present = np.array([v for v in values if v is not None], dtype=float)
    if len(present) < 3:
        return [None] * len(values)
    median = float(np.median(present))
    mad = float(np.median(np.abs(present - median)))
    if mad == 0.0:
        return [None] * len(values)
    return [None if v is None else 0.6745 * (float(v) - median) / mad for v in values]


def outlier_flags(rows: Sequence[Mapping], keys: Sequence[str]) -> list[str]:
    """For each row, ``"GM_ml z=+4.2; confidence z=-5.1"`` (or ``""``): the volumes (and scores) whose
    robust z across the successful rows exceeds :data:`OUTLIER_Z`; scores (``confidence``, ``quality``)
    are flagged only when low. A quality score below the model's threshold is flagged whatever the study."""
    from torchsci_neuro.quality import QUALITY_THRESHOLD

    flags: list[list[str]] = [[] for _ in rows]
    ok = [i for i, row in enumerate(rows) if row.get("status") == "ok"]
    for i in ok:
        quality = _number(rows[i].get("quality"))
        if quality is not None and quality < QUALITY_THRESHOLD:
            flags[i].append(f"quality {quality:.2f} < {QUALITY_THRESHOLD} (not like a T1 brain scan)")
    for key in keys:
        values = [_number(rows[i].get(key)) for i in ok]
        for i, z in zip(ok, robust_z(values), strict=True):
            low_only = key in ("confidence", "quality")
            if z is not None and (z < -OUTLIER_Z if low_only else abs(z) > OUTLIER_Z):
                flags[i].append(f"{key} z={z:+.1f}")
    return ["; ".join(f) for f in flags]


def _number(value: object) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #eee; cursor: pointer; user-select: none; }
td:first-child, td.text { text-align: left; }
tr.flagged td { background: #fff3cd; }
tr.failed td { background: #f8d7da; }
section { border-top: 1px solid #ccc; margin-top: 1.5em; padding-top: 0.5em; }
section img { max-width: 100%; }
.flag { color: #a15c00; font-weight: bold; }
"""

# Sorts the table by the clicked column (numbers by value, text alphabetically; again to reverse).
_SCRIPT = """
document.querySelectorAll("#volumes th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = document.querySelector("#volumes tbody");
    var rows = Array.prototype.slice.call(body.rows);
    var descending = th.dataset.order === "asc";
    th.dataset.order = descending ? "desc" : "asc";
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
      var nx = parseFloat(x), ny = parseFloat(y), order;
      if (!isNaN(nx) && !isNaN(ny)) { order = nx - ny; } else { order = String(x).localeCompare(String(y)); }
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _cell(value: object, text: bool = False, digits: int = 1) -> str:
    shown = "" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))
    sort = "" if value is None else str(value)
    return f'<td{" class=text" if text else ""} data-value="{html.escape(sort)}">{html.escape(shown)}</td>'


def write_report(path: str | os.PathLike, rows: Sequence[Mapping], figures: Mapping[str, Path], task: str,
                 title: str = "torchsci neuro study") -> Path:
    """Write the study's self-contained HTML QC report (atomically).

    Parameters
    ----------
    path
        The ``.html`` file to write.
    rows
        The volumes table's rows (see :func:`torchsci_neuro.study.segment_study`): ``scan``, ``status``,
        ``reason``, ``TIV_ml``, ``<label>_ml`` with ``_low``/``_high``, ``confidence``, ``quality``, ``flags``.
    figures
        Each successful scan's QC PNG by scan id; embedded as ``data:`` URIs.
    task
        ``"tissue"`` or ``"brain_mask"``: which label columns to show.
    title
        The page's title.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    names = ["TIV", *LABEL_NAMES[task][1:]]
    ok = [r for r in rows if r.get("status") == "ok"]
    flagged = [r for r in ok if r.get("flags")]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["scan", "status", *(f"{n} mL" for n in names), "confidence", "quality", "flags"])
    body, sections = [], []
    for row in rows:
        scan_id = str(row["scan"])
        anchor = f"scan-{scan_id}"
        css = "failed" if row.get("status") != "ok" else ("flagged" if row.get("flags") else "")
        cells = [f'<td class=text data-value="{html.escape(scan_id)}"><a href="#{html.escape(anchor)}">'
                 f"{html.escape(scan_id)}</a></td>", _cell(row.get("status"), text=True)]
        cells += [_cell(_number(row.get(f"{n}_ml"))) for n in names]
        cells += [_cell(_number(row.get("confidence")), digits=3), _cell(_number(row.get("quality")), digits=3),
                  _cell(row.get("flags") or row.get("reason") or "", text=True)]
        body.append(f'<tr class="{css}">{"".join(cells)}</tr>')
        parts = [f'<section id="{html.escape(anchor)}"><h2>{html.escape(scan_id)}</h2>',
                 f"<p>{html.escape(str(row.get('source', '')))}</p>"]
        if row.get("status") != "ok":
            parts.append(f"<p class=flag>failed: {html.escape(str(row.get('reason', '')))}</p>")
        else:
            if row.get("flags"):
                parts.append(f"<p class=flag>outlier: {html.escape(str(row['flags']))}</p>")
            figure = figures.get(scan_id)
            if figure is not None:
                parts.append(f'<img alt="{html.escape(scan_id)} overlay" src="{_data_uri(Path(figure))}">')
            volumes = ", ".join(f"{n} {float(row[f'{n}_ml']):.1f} mL [{float(row[f'{n}_ml_low']):.1f}, "
                                f"{float(row[f'{n}_ml_high']):.1f}]" for n in names if row.get(f"{n}_ml_low") not in (None, ""))
            parts.append(f"<p>{html.escape(volumes)} ({html.escape(str(row.get('interval', '')))} interval)</p>")
        parts.append('<p><a href="#volumes">back to the table</a></p></section>')
        sections.append("".join(parts))
    model = ok[0] if ok else (rows[0] if rows else {})
    summary = (f"{len(rows)} scans: {len(ok)} segmented, {len(rows) - len(ok)} failed, {len(flagged)} flagged as "
               f"outliers (robust z &gt; {OUTLIER_Z}). Model {html.escape(str(model.get('model', '')))} "
               f"(sha256 {html.escape(str(model.get('model_sha256', ''))[:12])}), torchsci "
               f"{html.escape(str(model.get('torchsci_version', '')))}. Click a column to sort.")
    page = (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{summary}</p>"
            f'<table id="volumes"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            f'{"".join(sections)}<script>{_SCRIPT}</script></body></html>\n')
    return write_text(path, page)
