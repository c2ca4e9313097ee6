"""Whether a model can judge an input: the one shape every field's predictions carry.

A prediction for an input unlike anything the model was trained on (a blank image, a metal complex
given to a model of organic molecules) is a number without meaning. Each field decides *whether* its
model can judge an input (a scan-quality score, a chemical applicability domain); the core fixes *how*
that is reported, the same way in every output form:

- Python: an :class:`Applicability` per input, returned beside the predictions when asked for;
- tables (CSV): the columns in :data:`COLUMNS`, filled by :func:`as_columns`;
- the command line and lab scripts: one warning line from :func:`warning_line` naming the source, how
  many inputs cannot be judged, the first few with their reason, and what the judgement is based on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

COLUMNS = ("applicable", "applicability_score", "applicability_reason")
"""CSV columns every prediction table carries: ``yes``/``no``, the field's score (empty if it has none), why not."""


@dataclasses.dataclass(frozen=True)
class Applicability:
    """Whether the model can judge one input.

    Parameters
    ----------
    applicable
        ``False`` when the prediction for this input should not be trusted.
    reason
        Why not (empty when applicable), in the field's words: ``"a salt (2 fragments)"``.
    score
        The field's own measure, if it has one (higher means more like the training data), else ``None``.
    basis
        What the judgement is based on: ``"rules: elements C H N O ..., one fragment, no radicals"``.

    Examples
    --------
    >>> from torchsci.applicability import Applicability, as_columns
    >>> flag = Applicability(False, "contains Pt (not in the training set's elements)", basis="element rules")
    >>> as_columns(flag)["applicable"], as_columns(flag)["applicability_reason"]
    ('no', "contains Pt (not in the training set's elements)")
    """

    applicable: bool
    reason: str = ""
    score: float | None = None
    basis: str = ""


def as_columns(flag: Applicability | None) -> dict[str, str]:
    """The :data:`COLUMNS` of one table row (all empty for an input that got no prediction)."""
    if flag is None:
        return dict.fromkeys(COLUMNS, "")
    score = "" if flag.score is None else f"{flag.score:.4g}"
    return {"applicable": "yes" if flag.applicable else "no", "applicability_score": score,
            "applicability_reason": flag.reason}


def warning_line(source: str, flags: Sequence[Applicability | None], names: Sequence[str] | None = None,
                 show: int = 3) -> str | None:
    """One line saying which inputs of ``source`` the model cannot judge, or ``None`` if it can judge all.

    Examples
    --------
    >>> from torchsci.applicability import Applicability, warning_line
    >>> flags = [Applicability(True, basis="rules"), Applicability(False, "a radical", basis="rules")]
    >>> warning_line("mols.csv", flags, names=["CCO", "[CH3]"])
    "mols.csv: the model cannot judge 1 of 2 inputs (based on rules): '[CH3]' (a radical); treat their predictions as unreliable (column 'applicable' = no)."
    """
    bad = [i for i, f in enumerate(flags) if f is not None and not f.applicable]
    if not bad:
        return None
    label = [repr(names[i]) if names is not None else f"#{i + 1}" for i in bad[:show]]
    listed = ", ".join(f"{name} ({flags[i].reason})" for name, i in zip(label, bad[:show], strict=True))
    more = f" and {len(bad) - show} more" if len(bad) > show else ""
    bases = sorted({flags[i].basis for i in bad if flags[i].basis})
    based = f" (based on {'; '.join(bases)})" if bases else ""
    return (f"{source}: the model cannot judge {len(bad)} of {len(flags)} inputs{based}: {listed}{more}; treat their "
            "predictions as unreliable (column 'applicable' = no).")
