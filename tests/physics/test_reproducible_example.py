"""``examples/physics_qg_tagging.py``'s flow twice in one session gives bit-identical weights (issue 11).

The example builds its tagger with ``create_model(..., seed=args.seed)`` before ``Trainer(seed=...)``;
this runs that flow (shortened to a few steps) twice, with other random draws in between.
"""

import importlib.util
from pathlib import Path

import torch

import torchsci

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "physics_qg_tagging.py"


def _example():
    spec = importlib.util.spec_from_file_location("physics_qg_tagging", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_flow_twice_gives_bit_identical_weights(tmp_path):
    example = _example()
    assert "seed=args.seed" in EXAMPLE.read_text()  # the script seeds its model the way this test does
    splits = torchsci.registry.create_dataset("physics/qg_issue96")
    task = torchsci.registry.create_task("physics/tagging")
    weights = []
    for run, name in enumerate(("physics/pfn", "physics/pfn")):
        torch.rand(17 + run)  # the session's earlier random draws must not matter
        model = torchsci.create_model(name, **splits.model_kwargs, **example.MODEL_ARGS[name], seed=0)
        trainer = torchsci.Trainer(max_epochs=1, max_steps=4, batch_size=256, lr=2e-3, scheduler="cosine",
                                   device="cpu", seed=0, run_dir=tmp_path / str(run), verbose=False,
                                   tensorboard=False, progress=False)
        trainer.fit(model, task, splits.train, splits.val)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    assert len(weights[0]) > 4 and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
