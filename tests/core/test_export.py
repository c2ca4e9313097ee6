"""torchsci.export: every format round-trips from disk with parity on other shapes; errors name the problem."""

from __future__ import annotations

import argparse
import contextlib
import math
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import torchsci
from torchsci import ExportError
from torchsci.cli import add_export_command
from torchsci.export import load_exported
from torchsci.testing import check_model

QUICK_FORMATS = ["pt2", "onnx", "torchscript"]  # aoti compiles C++ for a minute: tests/core/test_export_aoti.py


class UNet3d(nn.Module):
    """Two levels of a 3D U-Net: spatial sizes must stay multiples of 2."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.InstanceNorm3d(4), nn.ReLU())
        self.bottom = nn.Sequential(nn.MaxPool3d(2), nn.Conv3d(4, 8, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose3d(8, 4, 2, stride=2)
        self.head = nn.Conv3d(8, 3, 1)

    def forward(self, scan: torch.Tensor) -> torch.Tensor:
        skip = self.down(scan)
        return self.head(torch.cat([skip, self.up(self.bottom(skip))], dim=1))


class MaskedSet(nn.Module):
    """Deep-sets over padded particles: padding must not change the result."""

    def __init__(self) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16))
        self.rho = nn.Linear(16, 2)

    def forward(self, particles: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.phi(particles) * mask.unsqueeze(-1)
        return self.rho(h.sum(1) / mask.sum(1, keepdim=True).clamp(min=1))


class MessagePassing(nn.Module):
    """Sum aggregation with index_add_ over bonds, then a sum over each molecule's atoms."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.message = nn.Linear(8, 8)
        self.readout = nn.Linear(8, 1)

    def forward(self, atoms: torch.Tensor, bonds: torch.Tensor, molecule: torch.Tensor,
                molecule_slots: torch.Tensor) -> torch.Tensor:
        # molecule_slots is an empty (n_molecules, 0) tensor: its shape carries the molecule count, which
        # export keeps dynamic, where molecule.max() + 1 would be a data-dependent size.
        h = torch.relu(self.embed(atoms))
        for _ in range(2):
            messages = self.message(h)[bonds[0]]
            h = torch.relu(h + torch.zeros_like(h).index_add_(0, bonds[1], messages))
        pooled = torch.zeros(molecule_slots.shape[0], h.shape[1], dtype=h.dtype).index_add_(0, molecule, h)
        return self.readout(pooled)


def molecules(sizes: list[int], seed: int = 0) -> tuple:
    """A batch of chain molecules; every atom also bonds to atom 0 of its molecule (many duplicate targets)."""
    g = torch.Generator().manual_seed(seed)
    atoms, src, dst, owner, start = [], [], [], [], 0
    for m, n in enumerate(sizes):
        atoms.append(torch.randn(n, 3, generator=g))
        for i in range(n - 1):
            src += [start + i, start + i + 1]
            dst += [start + i + 1, start + i]
        src += list(range(start + 1, start + n))
        dst += [start] * (n - 1)
        owner += [m] * n
        start += n
    return torch.cat(atoms), torch.tensor([src, dst]), torch.tensor(owner), torch.zeros(len(sizes), 0)


def molecules_of(inputs: tuple, indices: list[int]) -> tuple:
    """batch_of for MessagePassing: rebuild the batch from the chosen molecules."""
    atoms, bonds, owner, _ = inputs
    parts, src, dst, new_owner, start = [], [], [], [], 0
    for m_new, m in enumerate(indices):
        members = (owner == m).nonzero().flatten()
        remap = torch.full((atoms.shape[0],), -1)
        remap[members] = torch.arange(len(members)) + start
        keep = (owner[bonds[0]] == m)
        parts.append(atoms[members])
        src.append(remap[bonds[0][keep]])
        dst.append(remap[bonds[1][keep]])
        new_owner += [m_new] * len(members)
        start += len(members)
    return torch.cat(parts), torch.stack([torch.cat(src), torch.cat(dst)]), torch.tensor(new_owner), \
        torch.zeros(len(indices), 0)


def cases() -> dict[str, tuple]:
    torch.manual_seed(0)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, 5:] = False
    mask[2, 2:] = False
    return {
        "unet3d": (UNet3d(), (torch.randn(3, 1, 8, 6, 10),), None),
        "masked_set": (MaskedSet(), (torch.randn(3, 7, 4), mask), None),
        "message_passing": (MessagePassing(), molecules([4, 3, 5]), molecules_of),
    }


@pytest.mark.parametrize("fmt", QUICK_FORMATS)
@pytest.mark.parametrize("name", ["unet3d", "masked_set", "message_passing"])
def test_every_format_round_trips_with_parity_on_other_shapes(name, fmt, tmp_path):
    model, example, batch_of = cases()[name]
    with pytest.warns(DeprecationWarning, match="TorchScript is deprecated") if fmt == "torchscript" \
            else contextlib.nullcontext():
        result = torchsci.export(model, example, format=fmt, path=tmp_path, batch_of=batch_of)
    report = result.report
    assert result.path.is_file() and report.size_bytes > 0
    assert report.max_abs_diff < 1e-5, report
    assert len(report.checked_shapes) == 2, report  # a larger batch, and other dynamic dims doubled
    assert all(shapes != report.example_shapes for shapes in report.checked_shapes)
    if name == "unet3d":  # batch and all three spatial dims stay dynamic
        assert report.dynamic_dims == ["input 0 dim 0", "input 0 dim 2", "input 0 dim 3", "input 0 dim 4"]
        assert report.checked_shapes[1] == [(2, 1, 16, 12, 20)]
    run = load_exported(result.path)
    other = cases()[name][1]
    if name == "message_passing":
        other = molecules([2, 6, 3, 4], seed=1)
    with torch.no_grad():
        torch.testing.assert_close(run(*other), model.eval()(*other), atol=1e-5, rtol=1e-4)


def test_batch_of_one_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ExportError, match="use a batch of at least 2"):
        torchsci.export(nn.Linear(4, 2), (torch.randn(1, 4),), path=tmp_path)


def test_static_export_is_checked_on_the_example_shape_only(tmp_path):
    result = torchsci.export(nn.Linear(4, 2), (torch.randn(3, 4),), format="onnx", path=tmp_path, dynamic=False)
    assert result.report.dynamic_dims == [] and result.report.checked_shapes == [[(3, 4)]]


class TracedBranch(nn.Module):
    """A branch on the data: tracing records only the side the example took."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if bool(x.mean() > 0) else -x


class BakedBatch(nn.Module):
    """int() of a size: tracing turns the example's batch size into a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(0, keepdim=True).expand(int(x.shape[0]), -1)


def test_a_wrong_artifact_is_an_error_naming_the_format_and_the_difference(tmp_path):
    x = torch.tensor([[1.0], [1.0], [-2.5]])  # mean < 0; with item 0 once more, mean > 0
    with pytest.warns(DeprecationWarning), \
            pytest.raises(ExportError, match=r"torchscript artifact .* differs from eager .*max abs diff 7.5"):
        torchsci.export(TracedBranch(), (x,), format="torchscript", path=tmp_path)
    with pytest.warns(DeprecationWarning), \
            pytest.raises(ExportError, match=r"torchscript .* an output of shape \(3, 2\) instead of \(4, 2\)"):
        torchsci.export(BakedBatch(), (torch.randn(3, 2),), format="torchscript", path=tmp_path)


def test_onnx_index_add_with_duplicate_indices_is_exact(tmp_path):
    """Regression for the legacy-exporter trap: torchsci's ONNX path (dynamo only) sums duplicate targets exactly.

    The legacy exporter (``dynamo=False``) got such nets about 14% wrong with only a warning (FIELD_NOTES);
    on this very net, torch 2.13's legacy exporter refuses ``index_add_`` with duplicate indices outright.
    """
    torch.manual_seed(0)
    model = MessagePassing().eval()
    example = molecules([6, 5, 7])
    assert torch.unique(example[1][1], return_counts=True)[1].max() >= 6  # many messages into one atom
    result = torchsci.export(model, example, format="onnx", path=tmp_path, batch_of=molecules_of, atol=1e-6,
                             rtol=1e-6)
    assert result.report.max_rel_diff < 1e-6
    report = check_model(model, example, batch_of=molecules_of, exports=("onnx",))
    assert "export:onnx" in report.passed


def test_artifacts_run_in_a_fresh_process_without_the_model_source(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "secret_lab_model.py").write_text(textwrap.dedent("""
        import torch
        class LabModel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(5, 3)
            def forward(self, x):
                return torch.tanh(self.lin(x)).cumsum(-1)
    """))
    sys.path.insert(0, str(source))
    try:
        import secret_lab_model

        model = secret_lab_model.LabModel()
    finally:
        sys.path.remove(str(source))
        sys.modules.pop("secret_lab_model", None)
    x = torch.randn(6, 5)
    with torch.no_grad():
        save_file({"x": x, "y": model(x)}, tmp_path / "io.safetensors")
    paths = []
    for fmt in QUICK_FORMATS:
        with pytest.warns(DeprecationWarning) if fmt == "torchscript" else contextlib.nullcontext():
            paths.append(str(torchsci.export(model, (torch.randn(3, 5),), format=fmt, path=tmp_path / "out").path))
    script = textwrap.dedent(f"""
        import sys
        from safetensors.torch import load_file
        import torch, torchsci
        io = load_file({str(tmp_path / "io.safetensors")!r})
        for path in {paths!r}:
            got = torchsci.load_exported(path)(io["x"])
            torch.testing.assert_close(got, io["y"], atol=1e-5, rtol=1e-4)
        assert "secret_lab_model" not in sys.modules
        print("ok", len({paths!r}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok 3"


def test_load_exported_refuses_what_is_not_an_artifact(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ExportError, match="not a torchsci export artifact"):
        load_exported(tmp_path / "notes.txt")
    with pytest.raises(ExportError, match="no such export artifact"):
        load_exported(tmp_path / "missing.pt2")


def test_unknown_format_lists_the_choices():
    with pytest.raises(ExportError, match="pt2, aoti, onnx, torchscript"):
        torchsci.export(nn.Linear(2, 2), (torch.randn(3, 2),), format="tflite")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="torchsci")
    add_export_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_exports_a_registered_model_and_a_checkpoint(tmp_path, capsys):
    assert _cli(["export", "core/mlp", "--format", "onnx", "-o", str(tmp_path / "reg")]) == 0
    assert (tmp_path / "reg" / "core-mlp.onnx").is_file()
    assert "parity on shapes" in capsys.readouterr().out

    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    trainer = torchsci.Trainer(max_epochs=1, batch_size=8, device="cpu", run_dir=tmp_path / "run", verbose=False,
                               tensorboard=False)
    fitted = trainer.fit(torchsci.create_model("core/mlp", in_features=3, hidden=[8]), torchsci.RegressionTask(),
                         data).model
    out = tmp_path / "mlp.pt2"
    assert _cli(["export", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--example-shape", "4,3",
                 "-o", str(out)]) == 0
    x = torch.randn(5, 3)
    torch.testing.assert_close(load_exported(out)(x), fitted.eval()(x))
    with pytest.raises(ExportError, match=r"MLP fails on the example inputs of shape \[\(4, 7\)\]"):
        _cli(["export", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--example-shape", "4,7", "-o", str(out)])
    with pytest.raises(ExportError, match="comma-separated"):
        _cli(["export", "core/mlp", "--example-shape", "four", "-o", str(tmp_path)])


def test_optimize_for_inference_freezes_weights_with_inductor(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 2)).eval()
    x = torch.randn(3, 1, 6, 6)
    with torch.no_grad():
        before = model(x)
        torch.compile(model, backend="inductor")(x)  # an unfrozen graph in dynamo's cache must not be reused
    fast = torchsci.export.optimize_for_inference(model, (x,))
    torch.testing.assert_close(fast(x), before, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    # frozen: the weights are constants in the compiled code, so the change is not seen
    torch.testing.assert_close(fast(x), before, atol=1e-5, rtol=1e-4)
    assert not torch._inductor.config.freezing  # switched on only around calls, not for the whole process
    torch._dynamo.reset()


class _GuardedRatio(torch.nn.Module):
    """z = a / (a + b + eps) and sqrt(a^2 + eps): finite at a = b = 0 only through the epsilon."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a / (a + b + 1e-8), torch.sqrt(a * a + 1e-8)


def test_onnx_keeps_small_epsilons(tmp_path):
    """torch 2.13's ONNX graph optimiser deletes ``x + 1e-8``; torchsci exports without it (found on ParT)."""
    a = torch.tensor([[0.0, 1.0, 2.0], [0.0, 3.0, 0.5]])
    result = torchsci.export(_GuardedRatio(), (a, torch.zeros_like(a)), format="onnx", path=tmp_path)
    z, root = (torch.as_tensor(o) for o in torchsci.load_exported(result.path)(a, torch.zeros_like(a)))
    assert torch.isfinite(z).all() and root[0, 0] == pytest.approx(1e-4)


def test_nan_in_an_artifact_is_reported_as_nan_not_zero():
    from torchsci.export import _diffs

    abs_diff, _, _, why = _diffs((torch.tensor([float("nan"), 1.0]),), (torch.tensor([0.0, 1.0]),))
    assert math.isnan(abs_diff) and "NaN" in why


def test_the_export_command_moved_to_the_cli_and_the_old_import_warns():
    import torchsci.cli
    import torchsci.export

    with pytest.warns(DeprecationWarning, match="moved to torchsci.cli.add_export_command"):
        assert torchsci.export.add_export_command is torchsci.cli.add_export_command
