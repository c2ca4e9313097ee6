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
# # Brain MRI: segment a scan, check it, measure it, then fine-tune on your own labels
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/torchsci/torchsci/blob/main/docs/tutorials/colab/neuro.ipynb)
#
# A T1-weighted MRI in, tissue labels out: cerebrospinal fluid (CSF), gray matter (GM) and white matter
# (WM) on the scan's own voxel grid, so they overlay the scan in any viewer. This tutorial:
#
# 1. segments a scan with one call, using the 3D U-Net that ships inside `torchsci_neuro`;
# 2. looks at the quality-control picture and at how sure the model is;
# 3. reads the tissue volumes in mL;
# 4. builds a small labelled study of a contrast the shipped model was not made for, measures how badly
#    it does there (Dice), fine-tunes it on a few labelled scans, and measures again on scans held out.
#
# The scan is the MNI152 2009a template that ships inside nilearn's wheel (no download). It runs in a few
# minutes on a CPU; `TORCHSCI_SMOKE=1` shrinks the study and the training (what CI runs).

# %%
# Inside Google Colab only: install torchsci from the repository (elsewhere this cell does nothing).
import os
import subprocess
import sys

if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "torchsci[all] @ git+https://github.com/torchsci/torchsci"], check=True)

# %%
import inspect
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from IPython.display import Image, display

import torchsci
import torchsci_neuro
from torchsci_neuro.templates import template_path

SMOKE = os.environ.get("TORCHSCI_SMOKE") == "1"
WORK = Path(tempfile.mkdtemp(prefix="torchsci_neuro_"))
print(f"device='auto' runs on {torchsci.resolve_device('auto')}")

# %% [markdown]
# ## 1. Segment a scan with one call
#
# `segment` takes a path (or a nibabel image) in any orientation and voxel size and returns a nibabel
# image of labels: 0 background, 1 CSF, 2 GM, 3 WM. `device="auto"` uses a GPU when there is one (the
# Colab GPU runtime), otherwise the CPU; on a Colab TPU runtime with `torch_xla`, pass `device="xla"`.

# %%
from torchsci_neuro import inference  # segment()'s module, to see what this version offers

scan_path = template_path("t1")
scan = nib.load(scan_path)
print(f"{scan_path.name}: shape {scan.shape}, voxel size {scan.header.get_zooms()} mm, "
      f"orientation {''.join(nib.aff2axcodes(scan.affine))}")
# The one call is `labels = torchsci_neuro.segment(scan_path, device="auto")`; asking for the class
# probabilities as well (used in section 2) costs nothing extra.
options = inspect.signature(inference.segment).parameters
flag = "probabilities" if "probabilities" in options else "return_probabilities"
start = time.perf_counter()
labels, probabilities = torchsci_neuro.segment(scan_path, device="auto", **{flag: True})[:2]
print(f"segmented in {time.perf_counter() - start:.1f} s; labels: shape {labels.shape}, "
      f"same grid as the scan: {np.allclose(labels.affine, scan.affine)}")
nib.save(labels, WORK / "labels.nii.gz")  # open it over the scan in FSLeyes, ITK-SNAP, 3D Slicer, ...

# %% [markdown]
# The network sees the scan at 2 mm; the tissue labels inside its brain mask are then refined at the scan's
# own resolution by the scan's intensities (a per-scan Gaussian model with the network's posteriors as the
# prior, as SPM and FSL FAST do with an atlas), which recovers thin sulcal CSF and the cortical ribbon.
# `segment(..., refine=False)` (`--no-refine`) keeps the network's own labels; the brain mask is the same.

# %% [markdown]
# ## 2. Look before you measure
#
# The QC picture overlays the labels on three slices through the brain's centre (the same picture
# `torchsci neuro segment scan.nii.gz -o labels.nii.gz --qc qc.png` writes). Check it for every scan:
# labels on the skull, the neck or the eyes mean the volumes are wrong.

# %%
from IPython import get_ipython

from torchsci_neuro.commands import write_qc

qc = write_qc(scan_path, labels, "tissue", WORK / "qc.png")
if get_ipython() is not None:  # write_qc switches matplotlib to its file backend: turn inline plots back on
    get_ipython().run_line_magic("matplotlib", "inline")
display(Image(filename=str(qc)))

# %% [markdown]
# How sure was the model? Voxels where the most likely class has a probability well below 1 are where
# the labels are a guess: tissue borders are expected; whole regions are a warning. (Versions of
# `torchsci_neuro` with a per-scan quality score report it alongside.)

# %%
confidence = probabilities.max(axis=0)
inside = np.asarray(labels.dataobj) > 0
print(f"inside the brain: median confidence {np.median(confidence[inside]):.3f}; "
      f"{(confidence[inside] < 0.6).mean():.1%} of voxels below 0.6")
if "quality" in " ".join(options):
    print("this version reports a quality score: see segment()'s documentation for its name")

centre = np.array(scan.shape) // 2
fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
axes[0].imshow(np.asarray(scan.dataobj)[:, :, centre[2]].T, cmap="gray", origin="lower")
axes[0].set_title("T1, axial slice")
shown = axes[1].imshow(confidence[:, :, centre[2]].T, cmap="magma", origin="lower", vmin=0.25, vmax=1)
axes[1].set_title("confidence of the chosen label")
for ax in axes:
    ax.axis("off")
fig.colorbar(shown, ax=axes[1], fraction=0.046)
plt.show()

# %% [markdown]
# ## 3. Tissue volumes
#
# Volumes come from voxel counts and the voxel size in the file's affine, in mL (`--volumes volumes.csv`
# on the command line). The template is a blurred average of many registered brains, not one person's
# scan: read these numbers as a demonstration, and the model card for what the model over- and
# under-calls.

# %%
from torchsci_neuro.inference import label_volumes

volumes = label_volumes(labels, "tissue")
for row in volumes:
    print(f"{row['name']:>4}: {row['volume_ml']:7.1f} mL")
total = sum(row["volume_ml"] for row in volumes)
print(f"brain (CSF + GM + WM): {total:.1f} mL; GM fraction {volumes[1]['volume_ml'] / total:.2f}")

fig, ax = plt.subplots(figsize=(4.5, 3))
ax.bar([row["name"] for row in volumes], [row["volume_ml"] for row in volumes], color=["#1f77b4", "#ff7f0e", "#2ca02c"])
ax.set_ylabel("volume (mL)")
ax.set_title("tissue volumes, MNI152 T1")
plt.show()

# %% [markdown]
# ## 4. Fine-tune on your own labelled scans
#
# The shipped model was trained on synthetic T1-like scans (its card, under *Shipped models*, says what
# that covers). A lab whose scans look different (another contrast, another scanner, children, lesions)
# should check it on a few labelled scans of its own, and fine-tune it if it falls short.
#
# Here we build such a study: scans with a **T2-like contrast** (CSF bright, white matter dark, the
# reverse of T1), generated from the MNI152 tissue maps with random shapes, positions and bias fields by
# `torchsci_neuro.synth.synthesize`, each with its true labels. The layout is the one the trainer reads
# from any lab: `images/` and `labels/` folders of NIfTI files with the same names.

# %%
from torchsci_neuro.synth import synthesize
from torchsci_neuro.templates import mni_head_labels

SHAPE = (48, 56, 48) if SMOKE else (64, 80, 64)  # voxels of 2 mm
N_TRAIN, N_TEST = (2, 1) if SMOKE else (6, 2)
study = WORK / "study"
for folder in ("images", "labels", "test_images", "test_labels"):
    (study / folder).mkdir(parents=True)
head = mni_head_labels()
affine = np.diag([2.0, 2.0, 2.0, 1.0])
for i in range(N_TRAIN + N_TEST):
    t1_like, truth = synthesize(SHAPE, 2.0, np.random.RandomState(100 + i), head=head, p_random_contrast=0.0,
                                p_field_of_view_cut=0.0, p_thick_slices=0.0)
    t2_like = np.where(t1_like > 0.05, 1.0 - t1_like, t1_like).astype(np.float32)  # air stays dark
    split = "" if i < N_TRAIN else "test_"
    nib.save(nib.Nifti1Image(t2_like, affine), study / f"{split}images" / f"sub-{i:02d}.nii.gz")
    nib.save(nib.Nifti1Image(truth.astype(np.uint8), affine), study / f"{split}labels" / f"sub-{i:02d}.nii.gz")
print(f"{N_TRAIN} labelled scans to train on, {N_TEST} held out, each {SHAPE} voxels of 2 mm")

example = nib.load(study / "test_images" / f"sub-{N_TRAIN:02d}.nii.gz").get_fdata()
truth = np.asarray(nib.load(study / "test_labels" / f"sub-{N_TRAIN:02d}.nii.gz").dataobj)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
axes[0].imshow(example[:, :, SHAPE[2] // 2].T, cmap="gray", origin="lower")
axes[0].set_title("a T2-like scan of the study")
axes[1].imshow(truth[:, :, SHAPE[2] // 2].T, cmap="viridis", origin="lower", vmin=0, vmax=3)
axes[1].set_title("its labels (1 CSF, 2 GM, 3 WM)")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# **Before**: the shipped model on the held-out scans. Dice overlap is 1 for a perfect label and 0 for no
# overlap, per tissue. The scans are small, so one sliding window covers each.

# %%
from torchsci_neuro.task import dice_overlap

TISSUES = {1: "CSF", 2: "GM", 3: "WM"}


def dice_per_tissue(model) -> dict[str, float]:
    scores = {name: [] for name in TISSUES.values()}
    for path in sorted((study / "test_images").glob("*.nii.gz")):
        predicted = np.asarray(torchsci_neuro.segment(path, device="auto", model=model, window=SHAPE,
                                                      precision="32").dataobj)
        true = np.asarray(nib.load(study / "test_labels" / path.name).dataobj)
        for label, name in TISSUES.items():
            scores[name].append(dice_overlap(predicted == label, true == label))
    return {name: float(np.mean(values)) for name, values in scores.items()}


before = dice_per_tissue(None)  # None: the shipped weights
print("shipped model on T2-like scans: " + ", ".join(f"{k} {v:.2f}" for k, v in before.items()))

# %% [markdown]
# **Fine-tune**: start from the shipped weights (`pretrained=True`) and train on random patches of the
# labelled scans, through the same Trainer and `neuro/segmentation` task (Dice + cross-entropy loss) as
# every other model. From a terminal this is
# `torchsci train experiment=neuro/segment data.root=study model.name=neuro/unet3d-tissue +model.pretrained=true`.

# %%
data = torchsci.registry.create_dataset("neuro/labelled_scans", root=str(study), patch=(32, 32, 32) if SMOKE else (48, 48, 48),
                                        samples_per_epoch=4 if SMOKE else 60, val_fraction=0.2, seed=0)
print(f"training cases {data.info['train_cases']}, validation cases {data.info['val_cases']}")
model = torchsci.create_model("neuro/unet3d-tissue", pretrained=True)
task = torchsci.registry.create_task("neuro/segmentation")
trainer = torchsci.Trainer(max_epochs=1 if SMOKE else 4, batch_size=2, lr=1e-3, scheduler="cosine",
                           device="auto", seed=0, run_dir=WORK / "fine_tune", tensorboard=False, verbose=False)
start = time.perf_counter()
run = trainer.fit(model, task, data.train, data.val)
print(f"fine-tuned in {time.perf_counter() - start:.0f} s; last epoch: "
      + ", ".join(f"{k} {v:.3f}" for k, v in run.history[-1].items() if k.startswith("val/dice")))

# %% [markdown]
# **After**: the fine-tuned checkpoint on the same held-out scans. A checkpoint path is a model for
# `segment` (and for `torchsci neuro segment --model`).

# %%
after = dice_per_tissue(run.best_checkpoint)
print("fine-tuned model on T2-like scans: " + ", ".join(f"{k} {v:.2f}" for k, v in after.items()))

x = np.arange(len(TISSUES))
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.bar(x - 0.2, list(before.values()), 0.4, label="shipped")
ax.bar(x + 0.2, list(after.values()), 0.4, label="fine-tuned")
ax.set_xticks(x, list(TISSUES.values()))
ax.set_ylim(0, 1)
ax.set_ylabel(f"Dice on {N_TEST} held-out scans")
ax.set_title("before and after fine-tuning")
ax.legend()
plt.show()

# %% [markdown]
# On so few scans and so little training the gain is a demonstration, not a result: validate on more
# held-out scans of your own before trusting the volumes, and keep the QC picture for every scan.
#
# ## Where next
#
# - The command line does the same for a folder of scans:
#   `torchsci neuro segment sub-01_T1w.nii.gz -o labels.nii.gz --volumes volumes.csv --qc qc.png`.
# - `task="brain_mask"` gives a brain mask instead of tissue labels.
# - [The core tutorial](core.py): resuming a long training exactly, sweeps, and exporting the U-Net.
