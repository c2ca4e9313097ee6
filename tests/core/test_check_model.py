"""The conformance battery catches the bugs it is for (each check is shown failing on a broken model)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchsci import ConformanceError
from torchsci.testing import CHECKS, Subject, check_model, run_check

X = (torch.randn(3, 5),)


class MixesTheBatch(nn.Module):
    """Normalises over the batch: item outputs depend on the other items."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 2)

    def forward(self, x):
        return self.lin(x - x.mean(0, keepdim=True))


class StridesWrong(nn.Module):
    """Reads raw storage, as if the input were contiguous (PyTorch's own early linear-layer bug)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 2)

    def forward(self, x):
        raw = torch.as_strided(x, x.shape, (x.shape[1], 1))
        return self.lin(raw)


class AlwaysFloat32(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 2)

    def forward(self, x):
        return self.lin(x).float()


class UnusedParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 2)
        self.forgotten = nn.Linear(5, 2)

    def forward(self, x):
        return self.lin(x)


class RandomInEval(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 2)

    def forward(self, x):
        return self.lin(x) + torch.rand(1)


@pytest.mark.parametrize(
    ("model", "check"),
    [(MixesTheBatch(), "batch_consistency"), (StridesWrong(), "non_contiguous"), (AlwaysFloat32(), "float64"),
     (UnusedParameter(), "backward"), (RandomInEval(), "eval_deterministic")],
)
def test_each_check_catches_its_bug(model, check):
    with pytest.raises(ConformanceError, match=f"{check}:"):
        check_model(model, X)


@pytest.mark.parametrize(
    ("model", "check"),
    [(MixesTheBatch(), "batch_consistency"), (StridesWrong(), "non_contiguous"), (AlwaysFloat32(), "float64"),
     (UnusedParameter(), "backward"), (RandomInEval(), "eval_deterministic")],
)
def test_each_check_runs_alone_and_catches_only_its_bug(model, check):
    with pytest.raises(ConformanceError, match=f"failed 1 conformance check\\(s\\):\n  - {check}:"):
        run_check(check, model, X)
    subject = Subject.of(model, X)
    assert CHECKS[check](subject)  # a check is a plain function of a Subject: the problem, or None
    if isinstance(model, RandomInEval):
        return  # a random output fails every check that compares two forwards
    for name in CHECKS:
        if name != check:
            run_check(name, model, X)  # the same model passes the checks its bug does not touch


def test_run_check_knows_the_export_and_gradcheck_checks_and_refuses_other_names():
    layer = nn.Sequential(nn.Linear(5, 4), nn.Tanh())
    run_check("gradcheck", layer, X)
    run_check("export:pt2", layer, X)
    with pytest.raises(ValueError, match="no conformance check named 'float32'; choose from eval_deterministic"):
        run_check("float32", layer, X)
    with pytest.raises(ValueError, match="exports='tflite'"):
        run_check("export:tflite", layer, X)


def test_known_gap_is_reported_not_run():
    report = check_model(MixesTheBatch(), X, known_gaps={"batch_consistency": "normalises over the batch by design"})
    assert "batch_consistency" not in report.passed
    assert report.known_gaps == {"batch_consistency": "normalises over the batch by design"}


def test_a_good_layer_passes_everything_including_gradcheck():
    report = check_model(nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)), X, gradcheck=True)
    assert report.passed == ["eval_deterministic", "batch_consistency", "non_contiguous", "float64", "backward",
                             "state_dict", "export:pt2", "gradcheck"]


def test_custom_batching_for_inputs_that_are_not_stacked():
    """A set model whose inputs are (values, index of the set each value belongs to)."""

    class SetSum(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 3)

        def forward(self, values, owner):
            out = torch.zeros(int(owner.max()) + 1, 3, dtype=values.dtype)
            return out.index_add(0, owner, self.lin(values))

    values, owner = torch.randn(7, 2), torch.tensor([0, 0, 1, 1, 1, 2, 2])

    def batch_of(inputs, indices):
        v, o = inputs
        parts = [(v[o == i], torch.full((int((o == i).sum()),), k)) for k, i in enumerate(indices)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    report = check_model(SetSum(), (values, owner), batch_of=batch_of, exports=())
    assert "batch_consistency" in report.passed and "non_contiguous" in report.passed
