# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   language_info:
#     name: python
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The core: exact resume, config-driven runs, compile marks, C++ export
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/torchsci/torchsci/blob/main/docs/tutorials/colab/core.ipynb)
#
# Every field plug-in trains through one small `torchsci.Trainer`. This tutorial shows the four things
# about it that a lab relies on, on a problem small enough for a laptop: learning the displacement
# $x(t; \omega, \zeta)$ of a damped oscillator from generated examples.
#
# 1. **Kill a run and resume it exactly**: the resumed run ends with the same weights, bit for bit, as a
#    run that was never interrupted.
# 2. **Config-driven runs and a sweep**: the same run from a config (Python or the `torchsci train`
#    command), and a sweep over learning rates.
# 3. **The hybrid frontend**: mark one block `@torchsci.compile`, keep the rest eager, and turn every mark
#    off with one switch when debugging.
# 4. **Export to C++** with AOTInductor: a compiled package that a C++ program loads without Python.
#
# It runs top to bottom on a CPU in a few minutes. `TORCHSCI_SMOKE=1` shrinks the data and epochs (what
# CI runs; the numbers are then meaningless).

# %%
# Inside Google Colab only: install torchsci from the repository (elsewhere this cell does nothing).
import os
import subprocess
import sys

if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "torchsci[all] @ git+https://github.com/torchsci/torchsci"], check=True)

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import torchsci
from torchsci.datasets import oscillator_splits

SMOKE = os.environ.get("TORCHSCI_SMOKE") == "1"
WORK = Path(tempfile.mkdtemp(prefix="torchsci_core_"))  # every file this tutorial writes goes here
print(f"torchsci {torchsci.__version__}, torch {torch.__version__}; device='auto' is {torchsci.resolve_device('auto')}")

# %% [markdown]
# `device="auto"` picks a CUDA GPU (the Colab GPU runtime), then Apple's MPS, then the CPU. On a Colab
# TPU runtime with `torch_xla` installed, pass `device="xla"` instead; `"auto"` never picks a TPU.
#
# ## 1. Kill a run, resume it, get the same weights
#
# The data: inputs $(\omega, \zeta, t)$, target $x$. `oscillator_splits` generates train, validation and
# test sets from fixed seeds.

# %%
splits = oscillator_splits(train_size=1000 if SMOKE else 8000, val_size=200 if SMOKE else 1000,
                           test_size=200 if SMOKE else 1000)
EPOCHS = 2 if SMOKE else 12
settings = dict(max_epochs=EPOCHS, batch_size=64, lr=3e-3, scheduler="cosine", device="auto", seed=0,
                checkpoint_every_n_steps=10, tensorboard=False, verbose=False)


def fresh_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchsci.create_model("core/mlp", in_features=3, out_features=1, hidden=[64, 64, 64], dropout=0.1)


task = torchsci.RegressionTask()
reference = torchsci.Trainer(**settings, run_dir=WORK / "uninterrupted").fit(
    fresh_model(), task, splits.train, splits.val)
print(f"uninterrupted: {len(reference.history)} epochs, validation RMSE {reference.history[-1]['val/rmse']:.4f}")

# %% [markdown]
# Now the same run, killed in the middle of an epoch. The "kill" is a dataset that raises after a number
# of examples have been read, as a node failure or a wall-time limit would stop a job between two
# checkpoints. The model has dropout, so the resumed run only matches if every random stream is restored.


# %%
class Killed(RuntimeError):
    """Stands in for SIGKILL, a pre-empted node or a wall-time limit."""


class KillAfter(torch.utils.data.Dataset):
    """The training set, until ``limit`` examples have been read."""

    def __init__(self, data, limit):
        self.data, self.limit, self.reads = data, limit, 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        self.reads += 1
        if self.reads > self.limit:
            raise Killed(f"killed after {self.limit} examples")
        return self.data[index]


limit = int(len(splits.train) * (EPOCHS / 2 + 0.37))  # part way through the middle epoch
run_dir = WORK / "killed_and_resumed"
try:
    torchsci.Trainer(**settings, run_dir=run_dir).fit(fresh_model(), task, KillAfter(splits.train, limit), splits.val)
except Killed as exc:
    print(f"the run died: {exc}; checkpoints left behind: {sorted(p.name for p in (run_dir / 'checkpoints').iterdir())}")

# %% [markdown]
# A new process would now run the same script again with `resume="last"`: it finds the newest
# checkpoint in the run folder (model, optimizer, scheduler, every RNG, the loader's position) and
# continues from there. Here a fresh model object stands in for the new process.

# %%
resumed = torchsci.Trainer(**settings, run_dir=run_dir).fit(fresh_model(), task, splits.train, splits.val,
                                                             resume="last")
want, got = reference.model.state_dict(), resumed.model.state_dict()
identical = all(torch.equal(want[name], got[name]) for name in want)
print(f"resumed run: validation RMSE {resumed.history[-1]['val/rmse']:.4f}; "
      f"weights bit-identical to the uninterrupted run: {identical}")
assert identical

# %%
import csv


def epoch_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv") as handle:
        return [row for row in csv.DictReader(handle) if row.get("val/rmse")]


fig, ax = plt.subplots(figsize=(6, 3.5))
for folder, style, label in ((WORK / "uninterrupted", "-", "uninterrupted"), (run_dir, "--", "killed + resumed")):
    rows = epoch_rows(folder)
    ax.plot([int(r["epoch"]) for r in rows], [float(r["val/rmse"]) for r in rows], style, marker="o", label=label)
ax.set_xlabel("epoch")
ax.set_ylabel("validation RMSE")
ax.set_title("the resumed run retraces the uninterrupted one")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. The same run from a config, and a sweep
#
# A config names registry entries (`model`, `data`, `task`) and holds the Trainer's settings; the YAML
# files ship inside the package (`torchsci train --help` lists the experiments). `torchsci.compose` builds
# one in Python with the same overrides the command line takes, and checks it before any data is read.

# %%
small = [f"data.train_size={len(splits.train)}", f"data.val_size={len(splits.val)}",
         f"data.test_size={len(splits.test)}", f"trainer.max_epochs={EPOCHS}",
         "trainer.tensorboard=false", "trainer.verbose=false"]
cfg = torchsci.compose(["experiment=core/oscillator", *small, f"run_dir={WORK / 'from_config'}"])
print(f"model: {dict(cfg.model)}\ntrainer: max_epochs={cfg.trainer.max_epochs}, lr={cfg.trainer.lr}, "
      f"scheduler={cfg.trainer.scheduler}")
results = torchsci.run(cfg)
print(f"test RMSE of the best checkpoint: {results['test']['test/rmse']:.4f}")

# %% [markdown]
# A typo is one line naming the key and its close matches, before anything runs:

# %%
try:
    torchsci.compose(["experiment=core/oscillator", "trainer.max_epoch=5"])
except torchsci.ConfigError as error:
    print(error)

# %% [markdown]
# A sweep from the command line is Hydra's multirun: every comma-separated value becomes a job (add
# `hydra/launcher=joblib` to run them in parallel, or the Slurm launcher on a cluster). The helper below
# calls the same `torchsci` command you would type in a terminal.

# %%
def torchsci_command(*args: str) -> str:
    """Run ``torchsci ARGS`` (the console script beside this Python) and return what it printed."""
    script = Path(sys.executable).with_name("torchsci")
    command = [str(script)] if script.exists() else ["torchsci"]
    done = subprocess.run(command + list(args), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"torchsci {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


sweep_dir = WORK / "sweep"
log = torchsci_command("train", "-m", "experiment=core/oscillator", "trainer.lr=1e-3,3e-3,1e-2", *small,
                       f"hydra.sweep.dir={sweep_dir}")
print("\n".join(line for line in log.splitlines() if "trainer.lr=" in line))

# %%
import json

sweep = []
for job in sorted(sweep_dir.glob("[0-9]*"), key=lambda p: int(p.name)):
    config = (job / "config.yaml").read_text()
    lr = float(next(line.split(":")[1] for line in config.splitlines() if line.strip().startswith("lr:")))
    sweep.append((lr, json.loads((job / "results.json").read_text())["test"]["test/rmse"]))
for lr, rmse in sweep:
    print(f"lr {lr:g}: test RMSE {rmse:.4f}")
assert len(sweep) == 3

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.semilogx([lr for lr, _ in sweep], [rmse for _, rmse in sweep], marker="o")
ax.set_xlabel("learning rate")
ax.set_ylabel("test RMSE")
ax.set_title("a three-job sweep")
plt.show()

# %% [markdown]
# ## 3. The hybrid frontend: compile one block, keep the rest eager
#
# Write the model in plain eager PyTorch; when one piece is stable and hot, mark it `@torchsci.compile`.
# Marks cost nothing until the first call. `TORCHSCI_COMPILE=0` in the environment,
# `torchsci.set_compile(False)` or the `with torchsci.compile.disabled():` block turn every mark off, so a
# debugger (or a print) works inside the block again.

# %%
import time


@torchsci.compile
class ResidualBlock(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(width)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.GELU(),
                                       torch.nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class Net(torch.nn.Module):
    def __init__(self, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(3, width)
        self.blocks = torch.nn.ModuleList(ResidualBlock(width) for _ in range(depth))
        self.head = torch.nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)  # eager: change it freely while experimenting
        for block in self.blocks:
            h = block(h)  # compiled (one graph shared by all blocks)
        return self.head(h)


torch.manual_seed(0)
net = Net().eval()
x = torch.randn(512, 3)
with torch.no_grad():
    start = time.perf_counter()
    compiled_out = net(x)  # first call compiles
    print(f"first call (compiles the block): {time.perf_counter() - start:.1f} s")
    with torchsci.compile.disabled():
        print(f"inside compile.disabled(): marks on = {torchsci.compile_enabled()}")
        eager_out = net(x)
print(f"compiled vs eager: max abs difference {(compiled_out - eager_out).abs().max().item():.2e}")
torch.testing.assert_close(compiled_out, eager_out, rtol=1e-4, atol=1e-5)

# %% [markdown]
# The same switch governs `Trainer(compile=True)` (which compiles the whole model for training), so a
# training run can be debugged eagerly without editing the code: `TORCHSCI_COMPILE=0 python train.py`.
#
# ## 4. Export to C++ with AOTInductor
#
# `torchsci.export` writes the model in one of four formats and proves the file agrees with eager: it
# reads the file back and runs it on inputs of other shapes than the example (one item more; every other
# dynamic dimension doubled). `"aoti"` is AOTInductor: compiled C++ in a `.pt2` package that
# `torch::inductor::AOTIModelPackageLoader` loads from a C++ program (`examples/cpp/` in the repository
# builds one). It takes about a minute to compile on a CPU.

# %%
best = torchsci.load_model(reference.best_checkpoint).eval()
example = (splits.test.tensors[0][:8],)  # a batch of at least 2: a batch of 1 would be frozen into the file
result = torchsci.export(best, example, format="aoti", path=WORK / "exported")
print(result.report)

# %% [markdown]
# The package runs without the model's Python source. `torchsci.load_exported` loads any of the four
# formats; from C++ it is `AOTIModelPackageLoader(path).run(inputs)`.

# %%
run_exported = torchsci.load_exported(result.path)
inputs, targets = splits.test.tensors
with torch.no_grad():
    eager = best(inputs)
native = run_exported(inputs)
native = native[0] if isinstance(native, (list, tuple)) else native
print(f"{len(inputs)} test examples: max |exported - eager| = {(native - eager).abs().max().item():.2e}, "
      f"test RMSE {((native - targets) ** 2).mean().sqrt().item():.4f}")

fig, ax = plt.subplots(figsize=(4.5, 4))
ax.scatter(targets.squeeze(1).numpy(), native.squeeze(1).numpy(), s=4, alpha=0.5)
ax.plot([-1, 1], [-1, 1], color="gray", lw=1)
ax.set_xlabel("true displacement x")
ax.set_ylabel("AOTInductor package's prediction")
ax.set_title("the exported model on the test set")
plt.show()

# %% [markdown]
# ## Where next
#
# - The field tutorials use this same Trainer with their own data, models and tasks:
#   [neuro](neuro.py), [physics](physics.py), [chemistry](chem.py).
# - `torchsci train --help` lists every experiment; [the CLI page](../cli.md) shows all commands.
# - Multi-GPU: the same script under `torchrun --nproc_per_node 4 script.py` trains with DDP.
