"""Registered datasets: ``physics/root`` (any ROOT files, described by a RootSpec) and ``physics/qg_issue96``.

Both return :class:`torchsci.data.DataSplits`; ROOT libraries are imported only when one is built.
"""

from __future__ import annotations

from typing import Any

from torchsci.registry import forwards_to

#: The ParticleNet paper's constituent features, relative to the jet axis (computed by the reader).
RELATIVE_FEATURES: dict[str, str] = {name: name for name in ("deta", "dphi", "log_pt", "log_energy", "log_pt_frac",
                                                             "log_energy_frac", "dR")}

QG_ISSUE96: dict[str, Any] = {
    "tree": "tree",
    "objects": ["jet1", "jet2"],
    "features": {"log_pt": "log({obj}P4.pt)", "eta": "{obj}P4.eta", "charged_multiplicity": "{obj}ChgMult"},
    "particles": {
        "p4": "{obj}TrksP4", "axis": "{obj}P4", "max_particles": 6,
        "features": {**RELATIVE_FEATURES, "charge": "{obj}TrksChg"},
    },
    "label": "{obj}ID == 21",
    "classes": ["quark", "gluon"],
    "selection": "{obj}ID > 0",
    "splits": {"train": "(EventNumber % 2 == 0) & (EventNumber % 10 != 0)", "val": "EventNumber % 10 == 0",
               "test": "EventNumber % 2 == 1"},
}


def issue96_path() -> str:
    """Path of ``uproot-issue96.root`` inside the scikit-hep-testdata 0.3.12 wheel (no download)."""
    try:
        import skhep_testdata
    except ImportError as exc:
        from torchsci.errors import DataError

        raise DataError("physics/qg_issue96 reads uproot-issue96.root from scikit-hep-testdata, which is not "
                        "installed: pip install 'torchsci[demo]' (or scikit-hep-testdata==0.3.12).") from exc

    return skhep_testdata.data_path("uproot-issue96.root")


@forwards_to("torchsci_physics.spec:RootSpec")
def root_dataset(*, streaming: bool = False, buffer_size: int = 50_000, seed: int = 0, **spec: Any) -> Any:
    """``physics/root``: train/val/test from ROOT files; ``spec`` are :class:`~torchsci_physics.data.RootSpec` fields."""
    from torchsci_physics.splits import make_splits

    return make_splits(spec, streaming=streaming, buffer_size=buffer_size, seed=seed)


@forwards_to(root_dataset)
def qg_issue96(**overrides: Any) -> Any:
    """``physics/qg_issue96``: quark (ID 1-5) vs gluon (21) jets of scikit-hep-testdata's issue96 file.

    Two jets per event become two examples; up to 6 leading tracks per jet; split by event-number
    parity (odd events are the test set). Any :class:`~torchsci_physics.data.RootSpec` field can be
    overridden.
    """
    spec = {**QG_ISSUE96, "files": issue96_path(), **overrides}
    return root_dataset(**spec)


def register_datasets(registry: Any) -> None:
    registry.register_dataset("physics/root")(root_dataset)
    registry.register_dataset("physics/qg_issue96")(qg_issue96)
