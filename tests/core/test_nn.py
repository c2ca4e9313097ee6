"""torchsci.nn: hand-written LSTM cells match torch.nn, their dropout is variational, and they compile."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torchsci
from torchsci.nn import LayerNormLSTMCell, LSTMCell, Recurrent
from torchsci.testing import check_model


def _twin(input_size: int, hidden: int, dtype: torch.dtype = torch.float32, **dropout: float):
    ref = nn.LSTMCell(input_size, hidden, dtype=dtype)
    cell = LSTMCell(input_size, hidden, **dropout).to(dtype)
    cell.load_state_dict(ref.state_dict())
    return ref, cell


@pytest.mark.parametrize(("batch", "input_size", "hidden", "dtype"),
                         [(1, 3, 5, torch.float32), (7, 1, 9, torch.float32), (4, 6, 3, torch.float64)])
def test_the_cell_without_dropout_is_torch_lstm_cell(batch, input_size, hidden, dtype):
    torch.manual_seed(0)
    ref, cell = _twin(input_size, hidden, dtype, dropout=0.0, recurrent_dropout=0.0)
    x = torch.randn(batch, input_size, 2, dtype=dtype)[..., 0]  # non-contiguous
    state = (torch.randn(batch, hidden, dtype=dtype), torch.randn(batch, hidden, dtype=dtype))
    tol = {"atol": 1e-12} if dtype == torch.float64 else {"atol": 1e-6}
    for got, want in zip(cell(x, state), ref(x, state), strict=True):
        assert got.dtype == dtype
        torch.testing.assert_close(got, want, rtol=0, **tol)
    for got, want in zip(cell(x), ref(x), strict=True):  # zero initial state
        torch.testing.assert_close(got, want, rtol=0, **tol)


def test_the_sequence_layer_is_torch_lstm_in_both_layouts():
    torch.manual_seed(0)
    ref = nn.LSTM(3, 5, batch_first=True)
    cell = LSTMCell(3, 5)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in ref.state_dict().items()})
    x = torch.randn(2, 11, 3)
    out, (h, c) = Recurrent(cell)(x)
    want, (h_ref, c_ref) = ref(x)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close((h, c), (h_ref[0], c_ref[0]))
    time_first, _ = Recurrent(cell, batch_first=False)(x.transpose(0, 1))
    torch.testing.assert_close(time_first.transpose(0, 1), want)


def test_input_dropout_drops_the_same_features_at_every_time_step():
    torch.manual_seed(0)
    lstm = Recurrent(LSTMCell(40, 6, dropout=0.5)).train()
    x = torch.randn(3, 9, 40, requires_grad=True)
    lstm(x)[0].sum().backward()
    dropped = x.grad == 0  # (batch, time, features): a dropped feature gets no gradient
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # one mask per sequence
    assert 0.2 < dropped[:, 0].float().mean() < 0.8
    assert not torch.equal(dropped[0, 0], dropped[1, 0])  # and one per item


def test_recurrent_dropout_silences_the_same_hidden_units_for_the_whole_sequence():
    torch.manual_seed(1)
    cell = LSTMCell(2, 40, recurrent_dropout=0.5)
    lstm = Recurrent(cell).train()
    lstm(torch.randn(1, 12, 2))[0].sum().backward()
    # h[k] enters the recurrence only through weight_hh[:, k]; if its mask changed over time, every
    # column would get a gradient at some step
    silent = (cell.weight_hh.grad == 0).all(dim=0)
    assert 0.2 < silent.float().mean() < 0.8
    x = torch.randn(2, 5, 2)
    assert not torch.equal(lstm(x)[0], lstm(x)[0])  # every sequence draws fresh masks; eval mode draws none
    lstm.eval()
    plain = LSTMCell(2, 40)
    plain.load_state_dict(cell.state_dict())
    torch.testing.assert_close(lstm(x)[0], Recurrent(plain)(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda: LSTMCell(2, 3, recurrent_dropout=0.3), lambda: LayerNormLSTMCell(2, 3)])
def test_gradients_match_finite_differences_in_float64(make):
    torch.manual_seed(0)
    lstm = Recurrent(make()).double().eval()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    def run(x, h, c):
        out, (h, c) = lstm(x, (h, c))
        return out, h, c

    assert torch.autograd.gradcheck(run, (x, h0, c0))


def test_the_layer_norm_cell_passes_the_conformance_battery():
    torch.manual_seed(0)
    model = torchsci.create_model("core/lstm", in_features=3, hidden=5, cell="layernorm", recurrent_dropout=0.2)
    report = check_model(model, (torch.randn(5, 4, 3),), exports=("pt2",), gradcheck=True)
    assert {"batch_consistency", "non_contiguous", "float64", "gradcheck", "export:pt2"} <= set(report.passed)


def test_compiled_cell_and_compiled_sequence_agree_with_eager(monkeypatch):
    # aot_eager: dynamo's capture and AOTAutograd's backward graph, which is where a hand-written cell
    # can break; inductor's code generation is covered by test_hybrid and checked in benchmarks/rnn_cells.py
    # (a cold inductor compile of the unrolled loop costs minutes on a CI box)
    monkeypatch.delenv("TORCHSCI_COMPILE", raising=False)
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = Recurrent(LayerNormLSTMCell(3, 4))
    x = torch.randn(2, 5, 3)
    want = eager(x)[0]
    want.sum().backward()
    grads = [p.grad.clone() for p in eager.parameters()]
    eager.zero_grad()
    for compiled in (Recurrent(torchsci.compile(eager.cell, backend="aot_eager")),
                     torchsci.compile(eager, backend="aot_eager")):
        got = compiled(x)[0]
        got.sum().backward()
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        for p, g in zip(eager.parameters(), grads, strict=True):
            torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-4)
        eager.zero_grad()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # both really went through dynamo
    torch._dynamo.reset()


def test_dropout_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"recurrent_dropout=1.0 must lie in \[0, 1\)"):
        LSTMCell(2, 3, recurrent_dropout=1.0)
