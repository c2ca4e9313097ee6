"""The recipe of the shipped ESOL model (torchsci_chem/weights/esol-dmpnn-rdkit2d.safetensors; see MODEL_CARD.md).

Five D-MPNNs with the named descriptor list ``rdkit2d-v1`` before the head, trained through
torchsci.Trainer on the same random 80/10/10 split (seed 0) of standardised ESOL molecules, each with its
own initialisation seed; the checkpoint with the best validation RMSE of each is kept. The validation
split then calibrates the conformal intervals and the in-domain threshold (both stored in the weight
file with the training fingerprints); the test split is only reported. The recipe is the one of every
shipped property model, examples/chem_train_property_ensemble.py, with ``esol`` fixed; this script takes
the same options.

    # members can train in parallel processes, then one call assembles them
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python examples/chem_train_esol_ensemble.py --out /tmp/esol --member 0
    ...
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python examples/chem_train_esol_ensemble.py --out /tmp/esol --assemble
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chem_train_property_ensemble import main  # noqa: E402  (the sibling script, found through the line above)

if __name__ == "__main__":
    main(fixed_property="esol", prog="chem_train_esol_ensemble.py")
