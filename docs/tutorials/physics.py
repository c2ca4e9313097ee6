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
# # Particle physics: from a ROOT file to a quark/gluon tagger
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/torchsci/torchsci/blob/main/docs/tutorials/colab/physics.ipynb)
#
# Is this jet from a quark or a gluon? Gluon jets radiate more: more, softer constituents spread wider.
# This tutorial trains a ParticleNet tagger straight from a ROOT file, without converting it first:
#
# 1. look at the file with uproot;
# 2. describe one training example in the analysis' own words (a dataset spec: branches, jets,
#    constituents, label, selection, and the train/test split by event number);
# 3. train, then measure ROC AUC and background rejection on the held-out events, against the classic
#    charged-multiplicity cut;
# 4. write the scores back as a friend tree, entry-aligned with the input, and read it with uproot;
# 5. export the tagger to ONNX and score the test events with ONNX Runtime, as a C++ or Python
#    production job would.
#
# The file is `uproot-issue96.root` from scikit-hep-testdata (installed with `torchsci[physics]`, no
# download). It runs in a few minutes on a CPU; `TORCHSCI_SMOKE=1` trains on a tenth of the events for
# one epoch (what CI runs).

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
import numpy as np
import uproot

import torchsci
from torchsci_physics.datasets import issue96_path

SMOKE = os.environ.get("TORCHSCI_SMOKE") == "1"
WORK = Path(tempfile.mkdtemp(prefix="torchsci_physics_"))
path = issue96_path()

# %% [markdown]
# ## 1. The file
#
# One TTree, `tree`: two jets per event, each with its four-momentum (`jet1P4`, a TLorentzVector in MeV),
# its true parton (`jet1ID`: 1-5 quarks, 21 gluon, -1 unknown) and up to six leading tracks
# (`jet1TrksP4`, `jet1TrksChg`).

# %%
tree = uproot.open(path)["tree"]
print(f"{tree.num_entries} events; branches: {', '.join(tree.keys())}")
ids = tree["jet1ID"].array(library="np")
multiplicity = tree["jet1ChgMult"].array(library="np")
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for name, rows in (("quark (ID 1-5)", (ids >= 1) & (ids <= 5)), ("gluon (ID 21)", ids == 21)):
    ax.hist(multiplicity[rows], bins=np.arange(0, 41) - 0.5, density=True, histtype="step", lw=1.5, label=name)
ax.set_xlabel("charged multiplicity of the leading jet")
ax.set_ylabel("fraction of jets")
ax.set_title("gluon jets have more charged particles")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. One example, in the analysis' words
#
# The dataset spec says what an example is. `{obj}` stands for each jet in turn (`objects`), so every
# event gives two examples. `particles` are the jet's tracks, padded to `max_particles` with a mask and
# described by features relative to the jet axis (the ParticleNet paper's seven, plus the track charge);
# `features` are per-jet numbers. The label is an expression (`jet1ID == 21`: gluon), the selection drops
# jets with an unknown parton, and the splits are selections on the event number: odd events are never
# seen in training.

# %%
from torchsci_physics.data import make_splits
from torchsci_physics.datasets import RELATIVE_FEATURES

spec = {
    "files": path,
    "tree": "tree",
    "objects": ["jet1", "jet2"],
    "features": {"log_pt": "log({obj}P4.pt)", "eta": "{obj}P4.eta", "charged_multiplicity": "{obj}ChgMult"},
    "particles": {"p4": "{obj}TrksP4", "axis": "{obj}P4", "max_particles": 6,
                  "features": {**RELATIVE_FEATURES, "charge": "{obj}TrksChg"}},
    "label": "{obj}ID == 21",
    "classes": ["quark", "gluon"],
    "selection": "{obj}ID > 0",
    "splits": {"train": "(EventNumber % 2 == 0) & (EventNumber % 10 != 0)", "val": "EventNumber % 10 == 0",
               "test": "EventNumber % 2 == 1"},
}
if SMOKE:  # a tenth of the events
    spec["splits"] = {"train": "EventNumber % 20 == 2", "val": "EventNumber % 20 == 4", "test": "EventNumber % 20 == 1"}
splits = make_splits(spec)
print(f"jets: train {len(splits.train)}, validation {len(splits.val)}, test {len(splits.test)}")
print(f"the model is told: { {k: v for k, v in splits.model_kwargs.items() if k != 'input_spec' and 'mean' not in k and 'std' not in k} }")

# %% [markdown]
# ## 3. Train and measure
#
# `create_model(..., **splits.model_kwargs)` sizes the network for these inputs and stores the spec inside
# the model, so a saved checkpoint knows how to read new files. The `physics/tagging` task supplies the
# loss (weighted cross-entropy) and the metrics (weighted ROC AUC, background rejection at 30% and 50%
# signal efficiency); the core Trainer does the rest.

# %%
model = torchsci.create_model("physics/particlenet", k=4, **splits.model_kwargs)
task = torchsci.registry.create_task("physics/tagging")
trainer = torchsci.Trainer(max_epochs=1 if SMOKE else 10, batch_size=256, lr=2e-3, scheduler="cosine",
                           device="auto", seed=0, run_dir=WORK / "run", tensorboard=False, verbose=False)
run = trainer.fit(model, task, splits.train, splits.val)
for row in run.history:
    print(f"epoch {row['epoch']}: validation AUC {row['val/auc']:.3f}")

# %%
from torchsci_physics.metrics import background_rejection, roc_auc, roc_curve

best = torchsci.load_model(run.best_checkpoint).eval()
test = splits.test
probs = trainer.predict(best, task, test).numpy()
labels, weights = test.arrays["label"], test.arrays["weight"]
charged = test.arrays["features"][:, 2]  # charged_multiplicity, the classic one-variable tagger
cut = np.stack([-charged, charged], axis=1)  # "more tracks = more gluon-like", as a score
taggers = {"ParticleNet": probs, "charged multiplicity": cut}
print(f"{'odd events (test)':<24}{'AUC':>7}{'1/eps_q @ eps_g=30%':>22}{'@ 50%':>8}")
for name, score in taggers.items():
    r30, r50 = (background_rejection(labels, score, weights, e) for e in (0.3, 0.5))
    print(f"{name:<24}{roc_auc(labels, score, weights):>7.3f}{r30:>22.1f}{r50:>8.1f}")

# %% [markdown]
# The rejection plot is how taggers are compared in a paper: quark-jet rejection (1 / quark efficiency)
# against gluon efficiency, on a log scale; higher is better. Score distributions below it show how
# well the classes separate.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for name, score in taggers.items():
    fpr, tpr, _ = roc_curve(labels, score, weights)
    keep = fpr > 0
    left.plot(tpr[keep], 1 / fpr[keep], label=f"{name} (AUC {roc_auc(labels, score, weights):.3f})")
left.set_yscale("log")
left.set_xlabel("gluon efficiency")
left.set_ylabel("quark rejection (1 / efficiency)")
left.grid(alpha=0.3)
left.legend()
for c, name in enumerate(["quark", "gluon"]):
    rows = labels == c
    right.hist(probs[rows, 1], bins=40, range=(0, 1), weights=weights[rows], density=True, histtype="step",
               lw=1.5, label=f"true {name}")
right.set_xlabel("ParticleNet gluon score")
right.set_ylabel("normalised")
right.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Scores back to ROOT, as a friend tree
#
# `predict_root` scores **every** entry of a file (the training selection is recorded, not applied) and
# writes a new file whose TTree `scores` has one entry per input entry, so entry *i* of the friend belongs
# to event *i* of the input. `observers` copies branches along for bookkeeping. The command-line form is
# `torchsci physics predict best.ckpt input.root -o scores.root --observers EventNumber`.

# %%
from torchsci_physics.predict import predict_root

friend_path = predict_root(best, path, WORK / "scores.root", observers=["EventNumber", "jet1ID"])
friend = uproot.open(friend_path)["scores"]
print(f"{friend_path.name}: {friend.num_entries} entries (the input has {tree.num_entries}); branches {friend.keys()}")
scores = friend.arrays(library="np")
events = tree.arrays(["EventNumber", "jet1ChgMult"], library="np")
assert (scores["EventNumber"] == events["EventNumber"]).all()  # aligned entry by entry

# %% [markdown]
# Read together, the friend's scores sit next to the input's branches; in ROOT itself,
# `tree->AddFriend("scores", "scores.root")` does the same. Here: the leading jet's gluon score against
# its charged multiplicity, for odd (test) events.

# %%
odd = (events["EventNumber"] % 2 == 1) & scores["jet1_selected"]
fig, ax = plt.subplots(figsize=(5.5, 4))
gluon = scores["jet1ID"][odd] == 21
for name, rows in (("quark", ~gluon), ("gluon", gluon)):
    ax.scatter(events["jet1ChgMult"][odd][rows], scores["jet1_score_gluon"][odd][rows], s=3, alpha=0.3, label=f"true {name}")
ax.set_xlabel("charged multiplicity (input tree)")
ax.set_ylabel("gluon score (friend tree)")
ax.legend(markerscale=4)
plt.show()

# %% [markdown]
# ## 5. Export to ONNX, score with ONNX Runtime
#
# `torchsci.export` traces the model on a real batch, writes an ONNX file (with the exact dynamo-based
# exporter) and proves it agrees with PyTorch on batches of other sizes and particle counts. ONNX Runtime
# then runs it anywhere: C++, a grid job, a trigger farm's Python.

# %%
from torchsci.data import make_loader

batch = next(iter(make_loader(test, batch_size=64, train=False, seed=0, collate_fn=splits.collate_fn)))
exported = torchsci.export(best, task.model_inputs(best, batch), format="onnx", path=WORK / "onnx")
print(exported.report)

# %%
import json

import onnxruntime

session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
print("inputs:", [(i.name, i.shape, i.type) for i in session.get_inputs()])
everything = next(iter(make_loader(test, batch_size=len(test), train=False, seed=0, collate_fn=splits.collate_fn)))
names = json.loads(session.get_modelmeta().custom_metadata_map["torchsci.input_names"])
present = {i.name for i in session.get_inputs()}
feed = {name: t.numpy() for name, t in zip(names, task.model_inputs(best, everything), strict=True) if name in present}
logits = session.run(None, feed)[0]
onnx_probs = np.exp(logits - logits.max(1, keepdims=True))
onnx_probs /= onnx_probs.sum(1, keepdims=True)
print(f"ONNX Runtime on {len(onnx_probs)} test jets: AUC {roc_auc(labels, onnx_probs, weights):.3f}, "
      f"max |p_onnx - p_torch| = {np.abs(onnx_probs - probs).max():.2e}")

# %%
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.scatter(probs[:, 1], onnx_probs[:, 1], s=3, alpha=0.4)
ax.plot([0, 1], [0, 1], color="gray", lw=1)
ax.set_xlabel("gluon score, PyTorch")
ax.set_ylabel("gluon score, ONNX Runtime")
ax.set_title("the exported tagger agrees")
plt.show()

# %% [markdown]
# ## Where next
#
# - `torchsci train experiment=physics/qg_tagging`: this training from a config; `physics/pfn` (Deep Sets)
#   and `physics/part` (Particle Transformer) are drop-in replacements for `physics/particlenet`.
# - Several particle collections per example (tracks and towers): `experiment=physics/qg_two_collections`.
# - Files larger than memory: `make_splits(spec, streaming=True)` reads them chunk by chunk.
