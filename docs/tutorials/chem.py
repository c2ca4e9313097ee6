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
# # Chemistry: aqueous solubility from SMILES
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/torchsci/torchsci/blob/main/docs/tutorials/colab/chem.ipynb)
#
# A medicinal chemist has a list of candidate structures and wants to know which will dissolve. This
# tutorial:
#
# 1. predicts aqueous solubility (log10 of mol/L, "logS") for a few SMILES with the model that ships
#    inside `torchsci_chem`, with the spread of its ensemble (and prediction intervals and an
#    applicability-domain flag where the installed version has them);
# 2. trains a model of your own on a CSV of measured values, and checks it on held-out scaffolds;
# 3. draws which atoms push a prediction up or down.
#
# It runs in a few minutes on a CPU; `TORCHSCI_SMOKE=1` shrinks the training (what CI runs).

# %%
# Inside Google Colab only: install torchsci from the repository (elsewhere this cell does nothing).
import os
import subprocess
import sys

if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "torchsci[all] @ git+https://github.com/torchsci/torchsci"], check=True)

# %%
import csv
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import torchsci
import torchsci_chem
from torchsci_chem.datasets import esol_path

SMOKE = os.environ.get("TORCHSCI_SMOKE") == "1"
WORK = Path(tempfile.mkdtemp(prefix="torchsci_chem_"))

# %% [markdown]
# ## 1. Predict with the shipped model
#
# `model="esol"` is an ensemble of five D-MPNNs (message-passing networks on the molecular graph) trained
# on the ESOL set (Delaney 2004, 1,128 molecules); its card is in [Shipped models](../cards/chem.md). Give it
# SMILES; it gives logS in log10(mol/L). `return_std=True` adds the standard deviation across the five
# members: where they disagree, trust the number less.

# %%
molecules = {
    "ethanol": "CCO",
    "phenol": "c1ccccc1O",
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "naphthalene": "c1ccc2ccccc2c1",
    "DDT": "ClC(Cl)(Cl)C(c1ccc(Cl)cc1)c1ccc(Cl)cc1",
}
logS, spread = torchsci_chem.predict(list(molecules.values()), model="esol", return_std=True)
for (name, smiles), value, std in zip(molecules.items(), logS, spread, strict=True):
    print(f"{name:>12}  logS {value:6.2f} ± {std:4.2f}   ({10 ** value * 1000:.3g} mmol/L)   {smiles}")

# %% [markdown]
# ### Intervals and the applicability domain
#
# A number without a range invites over-trust. `interval=0.9` gives a 90% prediction interval per molecule
# (split conformal, calibrated on the model's validation molecules: about 90 of 100 molecules like them
# fall inside) and, with it, the Tanimoto similarity to the nearest training molecule and whether it
# reaches the model's in-domain threshold. A salt, a metal complex or a molecule unlike the training set is
# marked not judgeable, with the reason: read its number as a guess.

# %%
result = torchsci_chem.predict(list(molecules.values()) + ["[Na+].[Cl-]"], model="esol", interval=0.9)
print(f"{'molecule':>12}  {'logS':>6}  {'90% interval':>15}  {'nearest':>7}  judgeable")
for name, value, low, high, near, ok, why in zip([*molecules, "salt"], result.value, result.lower, result.upper,
                                                 result.similarity, result.judgeable, result.applicability,
                                                 strict=True):
    print(f"{name:>12}  {value:6.2f}  [{low:6.2f}, {high:5.2f}]  {near:7.2f}  {'yes' if ok else 'no: ' + why.reason}")

# %% [markdown]
# The same from a terminal, for a CSV with a `smiles` column:
#
# ```bash
# torchsci chem predict --model esol molecules.csv -o predictions.csv
# ```
#
# ## 2. Train your own model on a CSV
#
# A lab's own measurements usually sit in a spreadsheet. Here we write one: the ESOL measurements (shipped
# with the package) as a plain CSV with two columns, the shape your own file would have. To see how the
# model does on chemistry it has not seen, split by **scaffold** (Bemis-Murcko ring systems): whole
# families of molecules are held out, which is harder and more honest than a random split.

# %%
with open(esol_path(), newline="") as handle:
    rows = list(csv.DictReader(handle))
if SMOKE:
    rows = rows[:200]
table = WORK / "my_measurements.csv"
with open(table, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["smiles", "logS"])
    writer.writerows((row["smiles"], row["measured log solubility in mols per litre"]) for row in rows)
print(f"{table.name}: {len(rows)} molecules; first lines:\n" + "".join(table.read_text().splitlines(True)[:4]))

# %%
data = torchsci.registry.create_dataset("chem/csv", path=str(table), smiles="smiles", targets="logS",
                                        split="scaffold", seed=0)
print(f"train {len(data.train)}, validation {len(data.val)}, test {len(data.test)} molecules (scaffold split)")
model = torchsci.create_model("chem/dmpnn", **data.model_kwargs)
task = torchsci.registry.create_task("chem/property")
trainer = torchsci.Trainer(max_epochs=2 if SMOKE else 25, batch_size=50, lr=1e-3, scheduler="cosine", seed=0,
                           device="auto", run_dir=WORK / "my_model", tensorboard=False, verbose=False)
run = trainer.fit(model, task, data.train, val_data=data.val, collate_fn=data.collate_fn)
test = trainer.test(run.model, task, data.test, collate_fn=data.collate_fn, ckpt_path=run.best_checkpoint)
print(f"test RMSE {test['test/rmse']:.3f} logS, MAE {test['test/mae']:.3f} on {len(data.test)} held-out-scaffold molecules")

# %% [markdown]
# The same from a terminal: `torchsci chem train my_measurements.csv --smiles smiles --target logS
# --split scaffold -o runs/my_model`. Training curves come from the run folder's `metrics.csv`:

# %%
with open(run.run_dir / "metrics.csv") as handle:
    epochs = [r for r in csv.DictReader(handle) if r.get("val/rmse")]
fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot([int(r["epoch"]) for r in epochs], [float(r["val/rmse"]) for r in epochs], marker="o")
ax.set_xlabel("epoch")
ax.set_ylabel("validation RMSE (logS)")
ax.set_title("your model, trained on your CSV")
plt.show()

# %% [markdown]
# A checkpoint is a prediction model too: `predict` takes its path. Plot predicted against measured logS
# for the held-out molecules:

# %%
measured = data.test.targets[:, 0].astype(float)
mine = torchsci_chem.predict(data.test.smiles, model=run.best_checkpoint)
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.scatter(measured, mine, s=10, alpha=0.6)
low, high = measured.min() - 0.5, measured.max() + 0.5
ax.plot([low, high], [low, high], color="gray", lw=1)
ax.set_xlabel("measured logS")
ax.set_ylabel("predicted logS (your model)")
ax.set_title(f"held-out scaffolds, RMSE {np.sqrt(np.mean((mine - measured) ** 2)):.2f}")
plt.show()

# %% [markdown]
# ### Intervals and a domain flag for your model
#
# The shipped models carry two things a single checkpoint lacks: intervals calibrated on their validation
# molecules (split conformal prediction) and the fingerprints of their training molecules, to flag a new
# molecule that is unlike all of them. `calibrated_ensemble` gives your trained model(s) the same, from the
# validation split of *your* data; the test split then measures how often the 90% intervals hold.

# %%
from torchsci_chem.ensembles import calibrated_ensemble, evaluate_ensemble

calibrated = calibrated_ensemble([torchsci.load_model(run.best_checkpoint)], data)
torchsci.save_model(calibrated, WORK / "my_model.ckpt")  # predict(..., model="my_model.ckpt") takes the file
figures = evaluate_ensemble(calibrated, data.test)
print(f"test: 90% intervals cover {figures['coverage']:.2f} of {figures['molecules']} molecules (mean width "
      f"{figures['mean_width']:.2f} logS); {figures['in_domain']:.0%} in domain")

out = torchsci_chem.predict(data.test.smiles, model=calibrated, interval=0.9)
order = np.argsort(out.value)
x = np.arange(len(order))
inside = (measured[order] >= out.lower[order]) & (measured[order] <= out.upper[order])
fig, ax = plt.subplots(figsize=(7, 3.4))
ax.errorbar(x, out.value[order], yerr=[out.value[order] - out.lower[order], out.upper[order] - out.value[order]],
            fmt="o", ms=3, lw=0.6, color="tab:blue", label="prediction and 90% interval")
ax.scatter(x[inside], measured[order][inside], marker="x", s=16, color="tab:green", label="measured, inside")
ax.scatter(x[~inside], measured[order][~inside], marker="x", s=16, color="tab:red", label="measured, outside")
ax.set_xlabel("held-out molecules, by prediction")
ax.set_ylabel("logS")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# From a terminal, `torchsci chem train my_measurements.csv --target logS --split scaffold --members 5
# --extra rdkit2d-v1 -o runs/my_model` trains five members with the shipped models' descriptors and writes
# `runs/my_model/model.ckpt` (their mean, the intervals and the domain) and `model.json` (the test figures);
# `torchsci chem predict --model runs/my_model/model.ckpt molecules.csv -o predictions.csv --interval 0.9` uses it.
#
# ## 3. Which atoms drive a prediction
#
# `draw_attributions` colours each atom by gradient × input of the prediction: green atoms push the
# predicted solubility up, pink ones down. It explains this model locally, to first order; read the signs
# and the ranking, not the magnitudes, and never as a measured contribution of the atom.

# %%
from torchsci_chem.attribution import draw_attributions

for name in ("aspirin", "DDT"):
    weights = draw_attributions(molecules[name], WORK / f"{name}.png", model="esol")
    print(f"{name}: most positive atom #{int(np.argmax(weights))}, most negative atom #{int(np.argmin(weights))}")
    display(Image(filename=str(WORK / f"{name}.png"), width=320))

# %%
from rdkit import Chem

from torchsci_chem.attribution import atom_attributions

smiles = molecules["aspirin"]
atoms = [f"{atom.GetSymbol()}{atom.GetIdx()}" for atom in Chem.MolFromSmiles(smiles).GetAtoms()]
fig, ax = plt.subplots(figsize=(7, 3))
for label, source in (("shipped ESOL ensemble", "esol"), ("your model", run.best_checkpoint)):
    ax.plot(atoms, atom_attributions(smiles, model=source), marker="o", label=label)
ax.axhline(0, color="gray", lw=1)
ax.set_ylabel("attribution (logS)")
ax.set_title("aspirin: per-atom attributions of two models")
ax.legend()
plt.show()

# %% [markdown]
# Two models trained on similar data can explain the same prediction differently; trust an explanation
# more where independently trained models agree on it, and less where they do not.
#
# ## Where next
#
# - `torchsci train experiment=chem/esol_descriptors`: a D-MPNN that also sees RDKit descriptors, which
#   generalised better to new chemistry in our tests (see [Benchmarks](../benchmarks.md)).
# - [The core tutorial](core.py): exact resume, sweeps and export, for these models too.
