"""The hybrid frontend: @torchsci.compile compiles lazily, and one switch really turns every mark off."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import torchsci
from torchsci import ConfigError


@pytest.fixture(autouse=True)
def _clean_dynamo(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "inductor"))
    monkeypatch.delenv("TORCHSCI_COMPILE", raising=False)
    torch._dynamo.reset()
    yield
    torchsci.set_compile(None)
    torch._dynamo.reset()


class Recorder:
    """A torch.compile backend that counts the graphs it compiles and the times they run."""

    def __init__(self) -> None:
        self.graphs = 0
        self.runs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> object:
        self.graphs += 1

        def run(*args):
            self.runs += 1
            return gm.forward(*args)

        return run


def make_block(backend):
    @torchsci.compile(backend=backend)
    class ResidualBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.tanh(self.lin(x))

    return ResidualBlock


def test_a_marked_class_compiles_once_and_the_switch_really_turns_it_off():
    rec = Recorder()
    block = make_block(rec)()
    x = torch.randn(4, 6)
    with torchsci.compile.disabled():
        eager = block(x)
    assert (rec.graphs, rec.runs) == (0, 0)  # marked, but nothing compiled while switched off
    compiled = block(x)
    assert rec.graphs == 1 and rec.runs == 1
    torch.testing.assert_close(compiled, eager)
    torchsci.set_compile(False)
    torch.testing.assert_close(block(x), eager)
    assert rec.runs == 1
    torchsci.set_compile(None)
    block(x)
    assert rec.runs == 2


def test_the_environment_variable_turns_every_mark_off(monkeypatch):
    rec = Recorder()
    block = make_block(rec)()
    monkeypatch.setenv("TORCHSCI_COMPILE", "0")
    assert not torchsci.compile_enabled()
    block(torch.randn(3, 6))
    assert rec.graphs == 0
    monkeypatch.setenv("TORCHSCI_COMPILE", "1")
    block(torch.randn(3, 6))
    assert rec.graphs == 1


def test_instances_share_the_compiled_graph_and_keep_their_state_dict_keys():
    rec = Recorder()
    cls = make_block(rec)
    a, b = cls(), cls()
    x = torch.randn(2, 6)
    a(x), b(x)
    assert rec.graphs == 1 and rec.runs == 2
    assert list(a.state_dict()) == ["lin.weight", "lin.bias"]
    clone = copy.deepcopy(a)
    torch.testing.assert_close(clone(x), a(x))


def test_a_marked_instance_and_function_compile_and_agree_with_eager():
    rec = Recorder()
    lstm_cell = torchsci.compile(nn.LSTMCell(5, 7), backend=rec)
    x, state = torch.randn(3, 5), (torch.zeros(3, 7), torch.zeros(3, 7))
    h, c = lstm_cell(x, state)
    assert rec.graphs == 1
    with torchsci.compile.disabled():
        h_eager, c_eager = lstm_cell(x, state)
    torch.testing.assert_close((h, c), (h_eager, c_eager))
    assert rec.runs == 1

    fn_rec = Recorder()

    @torchsci.compile(backend=fn_rec)
    def gelu_loss(pred, target):
        return torch.nn.functional.gelu(pred - target).pow(2).mean()

    p, t = torch.randn(8), torch.randn(8)
    assert torch.equal(gelu_loss(p, t), gelu_loss.__wrapped__(p, t)) and fn_rec.graphs == 1


def test_a_mark_inside_a_compiled_model_is_traced_by_the_outer_compilation():
    inner = Recorder()
    block = make_block(inner)()
    outer = Recorder()
    model = torch.compile(nn.Sequential(block, nn.ReLU()), backend=outer)
    x = torch.randn(2, 6)
    torch.testing.assert_close(model(x), torch.relu(block.forward.__wrapped__(block, x)))
    assert outer.graphs == 1 and inner.graphs == 0


def test_marking_something_that_is_not_callable_says_what_can_be_marked():
    with pytest.raises(ConfigError, match="nn.Module class, an nn.Module instance or a function"):
        torchsci.compile(42)


def test_inductor_compiles_a_marked_block():
    block = make_block("inductor")()  # the default backend; forward only, to keep the C++ compile short
    x = torch.randn(5, 6)
    with torch.no_grad():
        compiled = block(x)
        with torchsci.compile.disabled():
            eager = block(x)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-4)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1


def test_trainer_compiles_the_whole_model_unless_switched_off(tmp_path):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 3), torch.randn(32, 1))

    seen: list[nn.Module] = []

    class Seen(torchsci.Callback):
        def on_train_step_end(self, trainer, model, step):
            seen.append(model)

    def fit(compile_setting, run):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        trainer = torchsci.Trainer(max_epochs=2, batch_size=8, device="cpu", run_dir=tmp_path / run, verbose=False,
                                   tensorboard=False, compile=compile_setting, callbacks=[Seen()])
        seen.clear()
        result = trainer.fit(model, torchsci.RegressionTask(), data, val_data=data)
        # callbacks (EMA, logging) get the user's module, not torch.compile's wrapper
        assert seen and all(m is model for m in seen)
        return result

    rec = Recorder()
    compiled = fit({"backend": rec}, "compiled")
    assert rec.graphs >= 1 and rec.runs == 8  # 4 steps per epoch, 2 epochs
    eager = fit(False, "eager")
    for a, b in zip(compiled.model.parameters(), eager.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert list(torchsci.load_state(compiled.last_checkpoint)["model"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    off = Recorder()
    with torchsci.compile.disabled():
        fit({"backend": off}, "off")
    assert off.graphs == 0


def test_unwrap_model_sees_through_compile_and_ddp_wrappers():
    from torchsci.task import unwrap_model

    net = nn.Linear(2, 1)
    assert unwrap_model(torch.compile(net)) is net  # torch.compile's OptimizedModule, without calling it
    assert unwrap_model(net) is net
