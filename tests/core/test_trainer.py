"""Trainer features: learning, accumulation, clipping, schedulers, precision, early stopping, errors."""

from __future__ import annotations

import csv

import pytest
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

import torchsci
from torchsci import ClassificationTask, EarlyStopping, RegressionTask, Trainer, TrainingDiverged
from torchsci.data import make_loader


def _regression(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])) + 0.3)


def _trainer(tmp_path, **kw):
    base = dict(max_epochs=3, batch_size=16, device="cpu", run_dir=tmp_path, verbose=False, tensorboard=False)
    return Trainer(**{**base, **kw})


def _linear(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 1)


def test_fit_learns_and_writes_logs_and_checkpoints(tmp_path):
    data = _regression()
    result = _trainer(tmp_path, max_epochs=20, lr=0.05, tensorboard=True).fit(_linear(), RegressionTask(), data, data)
    assert result.history[-1]["val/rmse"] < 0.2 * result.history[0]["val/rmse"]
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert float(rows[-1]["val/rmse"]) == pytest.approx(result.history[-1]["val/rmse"])
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())
    assert torchsci.load_state(result.last_checkpoint)["progress"]["epoch"] == 20


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    data = _regression(64)
    big = _trainer(tmp_path / "a", batch_size=16, optimizer="sgd", lr=0.1).fit(_linear(), RegressionTask(), data)
    acc = _trainer(tmp_path / "b", batch_size=8, accumulate_grad_batches=2, optimizer="sgd", lr=0.1)
    small = acc.fit(_linear(), RegressionTask(), data)
    # Same samples per optimizer step (the shuffle order does not depend on batch size), same update.
    for a, b in zip(big.model.parameters(), small.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert torchsci.load_state(small.last_checkpoint)["progress"]["step"] == 12


def test_gradient_clipping_bounds_the_update(tmp_path):
    data = _regression(16)
    model = _linear()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = _trainer(tmp_path, max_epochs=1, batch_size=16, optimizer="sgd", lr=1.0, gradient_clip_norm=1e-3)
    after = list(trainer.fit(model, RegressionTask(), data).model.parameters())
    step = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before, strict=True)))
    assert step <= 1e-3 + 1e-7


def test_cosine_schedule_reaches_zero_at_the_last_step(tmp_path):
    result = _trainer(tmp_path, scheduler="cosine").fit(_linear(), RegressionTask(), _regression())
    assert result.history[0]["lr"] < 1e-3
    assert result.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_callable_optimizer_and_scheduler(tmp_path):
    trainer = _trainer(tmp_path, optimizer=lambda p: torch.optim.SGD(p, lr=0.5), scheduler_interval="epoch",
                       scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.1))
    result = trainer.fit(_linear(), RegressionTask(), _regression())
    assert [round(h["lr"], 6) for h in result.history] == [0.5, 0.05, 0.005]


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed", "64"])
def test_precisions_train(tmp_path, precision):
    data = _regression()
    result = _trainer(tmp_path, precision=precision, max_epochs=8, lr=0.05).fit(_linear(), RegressionTask(), data, data)
    assert result.history[-1]["val/rmse"] < result.history[0]["val/rmse"]
    expected = torch.float64 if precision == "64" else torch.float32
    assert next(result.model.parameters()).dtype == expected


def test_early_stopping_stops_and_remembers_after_resume(tmp_path):
    data = _regression()
    stop = EarlyStopping(monitor="val/rmse", patience=1, min_delta=10.0)
    result = _trainer(tmp_path, max_epochs=10, callbacks=[stop]).fit(_linear(), RegressionTask(), data, data)
    assert result.stopped_early and len(result.history) == 2
    state = torchsci.load_state(result.last_checkpoint)["callbacks"][0]
    assert state["bad_epochs"] == 1


def test_early_stopping_on_a_metric_that_does_not_exist(tmp_path):
    stop = EarlyStopping(monitor="val/auc")
    with pytest.raises(torchsci.ConfigError, match="val/auc.*val/rmse"):
        _trainer(tmp_path, callbacks=[stop]).fit(_linear(), RegressionTask(), _regression(), _regression())


def test_nan_in_the_data_stops_with_a_clear_error(tmp_path):
    x = torch.randn(32, 4)
    x[5, 2] = float("nan")
    data = TensorDataset(x, torch.zeros(32, 1))
    with pytest.raises(TrainingDiverged, match="became nan by step.*inputs for NaN"):
        _trainer(tmp_path, log_every_n_steps=1).fit(_linear(), RegressionTask(), data)


def test_validate_test_and_predict(tmp_path):
    data = _regression(40)
    trainer = _trainer(tmp_path, eval_batch_size=7)
    fitted = trainer.fit(_linear(), RegressionTask(), data).model
    val = trainer.validate(fitted, RegressionTask(), data)
    test = trainer.test(_linear(5), RegressionTask(), data, ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    assert val["val/rmse"] == pytest.approx(test["test/rmse"])
    preds = trainer.predict(fitted, RegressionTask(), data)
    assert preds.shape == (40, 1)
    torch.testing.assert_close(preds, fitted(data.tensors[0]))


def test_classification_with_weights_and_dict_batches(tmp_path):
    class Blobs(Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(1)
            self.y = torch.randint(0, 3, (90,), generator=g)
            self.x = torch.randn(90, 2, generator=g) * 0.3 + torch.eye(3, 2)[self.y] * 3

        def __len__(self):
            return 90

        def __getitem__(self, i):
            return {"inputs": self.x[i], "target": self.y[i], "weight": torch.tensor(1.0 + (i % 2))}

    torch.manual_seed(0)
    model = torchsci.create_model("core/mlp", in_features=2, out_features=3, hidden=[16])
    result = _trainer(tmp_path, max_epochs=15, lr=0.01).fit(model, ClassificationTask(), Blobs(), Blobs())
    assert result.history[-1]["val/accuracy"] > 0.9
    probs = _trainer(tmp_path).predict(result.model, ClassificationTask(), Blobs())
    torch.testing.assert_close(probs.sum(1), torch.ones(90))


class Stream(IterableDataset):
    """A stream whose content depends only on the epoch, like chunked reading of files."""

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.epoch)
        for _ in range(50):
            x = torch.randn(4, generator=g)
            yield x, x[:1] * 2


def test_iterable_dataset_with_accumulation_and_resume(tmp_path):
    def run(max_steps, folder, resume=None):
        trainer = _trainer(tmp_path / folder, batch_size=8, accumulate_grad_batches=2, max_steps=max_steps,
                           max_epochs=2)
        return trainer.fit(_linear(), RegressionTask(), Stream(), resume=resume)

    full = run(None, "full")
    assert torchsci.load_state(full.last_checkpoint)["progress"]["step"] == 8  # 7 batches -> 4 steps an epoch
    run(2, "part")
    resumed = run(None, "part", resume="last")
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


class BatchedStream(Stream):
    """The same stream, able to yield whole batches itself (make_loader then skips per-item fetching)."""

    def batched(self, batch_size, drop_last):
        stream = self

        class Batches(IterableDataset):
            def __iter__(self):
                rows = list(stream)
                for s in range(0, len(rows) - (batch_size - 1 if drop_last else 0), batch_size):
                    chunk = rows[s:s + batch_size]
                    yield torch.stack([x for x, _ in chunk]), torch.stack([y for _, y in chunk])

        return Batches()


@pytest.mark.parametrize("drop_last", [False, True])
def test_a_stream_that_batches_itself_gives_the_same_batches_and_resumes_exactly(tmp_path, drop_last):
    per_item = [b for b in make_loader(Stream(), batch_size=8, train=True, seed=0, epoch=1, drop_last=drop_last)]
    loader = make_loader(BatchedStream(), batch_size=8, train=True, seed=0, epoch=1, drop_last=drop_last)
    assert loader.batch_size is None
    batched = list(loader)
    assert len(batched) == len(per_item) == (6 if drop_last else 7)
    for (x1, y1), (x2, y2) in zip(per_item, batched, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)

    def run(max_steps, folder, resume=None):
        trainer = _trainer(tmp_path / folder, batch_size=8, max_steps=max_steps, max_epochs=2, drop_last=drop_last)
        return trainer.fit(_linear(), RegressionTask(), BatchedStream(), resume=resume)

    full = run(None, "full")
    run(3, "part")
    resumed = run(None, "part", resume="last")
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"optimizer": "lion"}, "adamw"), ({"scheduler": "linear"}, "cosine"), ({"batch_size": 0}, "batch_size=0"),
     ({"scheduler_interval": "batch"}, "'step' or 'epoch'")],
)
def test_bad_settings_are_config_errors(tmp_path, kwargs, match):
    with pytest.raises(torchsci.ConfigError, match=match):
        _trainer(tmp_path, **kwargs)


def test_step_hook_sees_every_optimizer_step(tmp_path):
    class Average(torchsci.Callback):
        """A running average of the weights, updated after each step (what EMA/SWA callbacks do)."""

        def __init__(self):
            self.steps, self.mean = [], None

        def on_train_step_end(self, trainer, model, step):
            self.steps.append(step)
            flat = torch.cat([p.detach().flatten() for p in model.parameters()])
            self.mean = flat if self.mean is None else self.mean + (flat - self.mean) / len(self.steps)

    avg = Average()
    _trainer(tmp_path, max_epochs=2, batch_size=32, accumulate_grad_batches=2, callbacks=[avg]).fit(
        _linear(), RegressionTask(), _regression(96))
    assert avg.steps == [1, 2, 3, 4]  # 3 batches an epoch, 2 per step, the leftover stepped at epoch end
    assert avg.mean.shape == (5,)
