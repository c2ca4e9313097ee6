"""Weighted metrics against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchsci.metrics import Accuracy, MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError


def test_weighted_regression_metrics_accumulate_over_batches():
    rng = np.random.default_rng(0)
    p, t, w = rng.normal(size=(50, 2)), rng.normal(size=(50, 2)), rng.uniform(0.1, 2, size=50)
    mse, rmse, mae = MeanSquaredError(), RootMeanSquaredError(), MeanAbsoluteError()
    for lo in range(0, 50, 16):
        sl = slice(lo, lo + 16)
        for m in (mse, rmse, mae):
            m.update(torch.tensor(p[sl]), torch.tensor(t[sl]), torch.tensor(w[sl]))
    expect_mse = np.sum(w * ((p - t) ** 2).mean(1)) / w.sum()
    assert mse.compute() == pytest.approx(expect_mse)
    assert rmse.compute() == pytest.approx(np.sqrt(expect_mse))
    assert mae.compute() == pytest.approx(np.sum(w * np.abs(p - t).mean(1)) / w.sum())


def test_accuracy_with_weights_and_reset():
    acc = Accuracy()
    acc.update(torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]]), torch.tensor([0, 1, 1]), torch.tensor([1.0, 1.0, 2.0]))
    assert acc.compute() == pytest.approx(0.5)
    acc.reset()
    assert np.isnan(acc.compute())
