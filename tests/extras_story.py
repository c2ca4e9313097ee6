"""One field's one-call story, run in a process that may lack the other fields' libraries.

``python tests/extras_story.py neuro|physics|chem|core [--hide]``: ``--hide`` first blocks, with a meta-path
finder, the import of every field library that the field's extra does not install (what ``pip install
'torchsci[<field>]'`` alone gives), then checks that ``torchsci --version`` works, that the other fields
are reported absent by ``torchsci models`` and ``torchsci env``, and that the field's story runs. Used by
``tests/core/test_plugin_contract.py`` (with ``--hide``) and by ``make check-extras`` (in real venvs that
have each extra alone, without ``--hide``). Prints ``story <field> ok`` at the end.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path

# Top-level modules of each field's extra (pyproject.toml), as Python imports them.
FIELD_LIBRARIES = {
    "neuro": {"nibabel", "skimage", "nilearn"},
    "physics": {"uproot", "awkward", "vector"},
    "chem": {"rdkit"},
}
# Shared by more than one extra: hidden only when no installed extra brings them.
SHARED = {"sklearn": {"physics", "chem"}, "matplotlib": {"neuro", "physics", "chem"},
          "scipy": {"neuro", "physics", "chem"}, "skhep_testdata": set()}  # demo data: in no field's extra


def hidden_for(field: str) -> set[str]:
    hidden = set().union(*(libs for name, libs in FIELD_LIBRARIES.items() if name != field))
    return hidden | {lib for lib, users in SHARED.items() if field not in users}


class _Hide:
    """A meta-path finder that makes ``import <name>`` fail for the given top-level names."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by tests/extras_story.py)",
                                      name=fullname)


def _cli(*argv: str) -> tuple[int, str]:
    from torchsci.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()


def story_core(tmp: Path) -> None:
    import torch

    import torchsci

    model = torchsci.create_model("core/mlp", in_features=4, out_features=1)
    assert model(torch.zeros(2, 4)).shape == (2, 1)
    cfg = torchsci.compose(["experiment=core/oscillator", "trainer=smoke"])
    assert cfg.model.name == "core/mlp"


def story_neuro(tmp: Path) -> None:
    import nibabel as nib
    import numpy as np

    import torchsci_neuro

    scan = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"  # a real 2 mm scan, in nibabel's wheel
    labels = torchsci_neuro.segment(scan, device="auto")
    assert labels.shape == nib.load(scan).shape, labels.shape
    assert set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2, 3}


def story_physics(tmp: Path) -> None:
    import numpy as np
    import uproot

    import torchsci
    import torchsci_physics

    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    branches = {"EventNumber": np.arange(n), "x1": rng.normal(y, 1.0), "x2": rng.normal(-y, 1.0), "y": y}
    path = tmp / "events.root"
    with uproot.recreate(path) as f:
        f.mktree("events", {k: v.dtype for k, v in branches.items()})
        f["events"].extend(branches)
    splits = torchsci.registry.create_dataset(
        "physics/root", files=str(path), tree="events", features={"x1": "x1", "x2": "x2"}, label="y == 1",
        classes=["background", "signal"], splits={"train": "EventNumber % 2 == 0", "test": "EventNumber % 2 == 1"})
    model = torchsci.create_model("physics/mlp", **splits.model_kwargs)
    arrays = torchsci_physics.predict(model, path, device="auto", batch_size=128)  # the verb: arrays
    assert arrays["score_signal"].shape == (n,)
    out = torchsci_physics.predict_root(model, path, tmp / "scores.root")  # the same as a friend tree
    scores = uproot.open(out)["scores"].arrays(library="np")
    assert np.array_equal(scores["score_signal"], arrays["score_signal"])
    from torchsci_physics.predict import write_friend_tree  # the module's names keep working

    assert callable(write_friend_tree) and callable(torchsci_physics.predict)


def story_chem(tmp: Path) -> None:
    import torchsci_chem

    out = torchsci_chem.predict(["CCO", "c1ccccc1"])
    assert len(out) == 2


STORIES = {"core": story_core, "neuro": story_neuro, "physics": story_physics, "chem": story_chem}


def main(argv: list[str]) -> int:
    field, hide = argv[0], "--hide" in argv
    if hide:
        sys.meta_path.insert(0, _Hide(hidden_for(field)))
    code, text = _cli("--version")
    assert code == 0 and text.strip() == __import__("torchsci").__version__, text
    code, text = _cli("models")
    assert code == 0, text
    code, env = _cli("env")
    assert code == 0, env
    import torchsci

    others = [f for f in FIELD_LIBRARIES if f != field]
    for other in others if hide else []:
        assert other in torchsci.registry.registry.unavailable, (other, torchsci.registry.registry.unavailable)
        assert f"plug-in '{other}' not available" in text, text
        assert f"plug-in {other}: not available" in env, env
        assert not torchsci.list_models(f"{other}/*"), torchsci.list_models(f"{other}/*")
    if field != "core":
        assert field in torchsci.registry.registry.plugins, (field, torchsci.registry.registry.unavailable)
        assert torchsci.list_models(f"{field}/*"), f"no {field}/* models registered"
    with tempfile.TemporaryDirectory() as tmp:
        STORIES[field](Path(tmp))
    print(f"story {field} ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
