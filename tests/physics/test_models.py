"""Every physics model: conformance with jet features, and padded particles never change the output."""

import pytest
import torch

from torchsci.testing import check_model
from torchsci_physics.interaction import PairInteractionNetwork
from torchsci_physics.models import (
    JetMLP,
    ParticleFlowNetwork,
    ParticleNet,
    ParticleTransformer,
    example_particles,
    pairwise_features,
)

PARTICLE_MODELS = {
    "pfn": (lambda **kw: ParticleFlowNetwork(**kw), {}),
    "particlenet": (lambda **kw: ParticleNet(k=3, blocks=((16, 16), (16,)), **kw), {"with_points": True}),
    "part": (lambda **kw: ParticleTransformer(dim=16, heads=2, blocks=2, **kw), {"with_vectors": True}),
    "pairnet": (lambda **kw: PairInteractionNetwork(dim=16, pair_widths=(16,), message=(16,), **kw), {"with_vectors": True}),
}


def _with_garbage(inputs, extra):
    """The same jets with ``extra`` more padded slots, and random values written into every padded slot."""
    g = torch.Generator().manual_seed(1)
    particles, mask, *rest = inputs
    b, p = mask.shape
    new_mask = torch.cat([mask, torch.zeros(b, extra, dtype=torch.bool)], dim=1)

    def grow(t):
        bigger = torch.cat([t, torch.zeros(b, extra, t.shape[-1])], dim=1)
        noise = 50 * torch.randn(bigger.shape, generator=g)
        return torch.where(new_mask.unsqueeze(-1), bigger, noise)

    return (grow(particles), new_mask, *[grow(t) for t in rest])


@pytest.mark.parametrize("name", PARTICLE_MODELS)
def test_padded_particles_never_change_the_output(name):
    make, opts = PARTICLE_MODELS[name]
    torch.manual_seed(0)
    model = make(num_particle_features=7).eval()
    inputs = example_particles(**opts)
    with torch.no_grad():
        want = model(*inputs)
        for extra in (0, 1, 4):
            got = model(*_with_garbage(inputs, extra))
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", PARTICLE_MODELS)
def test_padding_invariance_holds_in_training_mode_too(name):
    make, opts = PARTICLE_MODELS[name]
    torch.manual_seed(0)
    model = make(num_particle_features=7, dropout=0.0).train()
    inputs = example_particles(**opts)
    torch.testing.assert_close(model(*_with_garbage(inputs, 3)), model(*inputs), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", PARTICLE_MODELS)
def test_jet_with_no_particle_gives_finite_output(name):
    make, opts = PARTICLE_MODELS[name]
    model = make(num_particle_features=7).eval()
    particles, mask, *rest = example_particles(**opts)
    mask = mask.clone()
    mask[1] = False
    assert torch.isfinite(model(particles, mask, *rest)).all()


@pytest.mark.parametrize("name", PARTICLE_MODELS)
def test_conformance_with_jet_features_and_standardisation(name):
    make, opts = PARTICLE_MODELS[name]
    torch.manual_seed(0)
    model = make(num_particle_features=7, num_features=2, num_classes=3, particle_mean=[0.5] * 7,
                 particle_std=[2.0] * 7, feature_mean=[1.0, -1.0], feature_std=[3.0, 0.5])
    inputs = (*example_particles(**opts), torch.randn(3, 2))
    report = check_model(model, inputs)
    assert "export:pt2" in report.passed


def test_particle_order_does_not_matter_for_pfn_and_particlenet():
    particles, mask, points = example_particles(with_points=True)
    perm = torch.randperm(11)
    real = mask[0]  # jet 0 has every slot real, so any permutation keeps it a valid padded jet
    assert real.all()
    for model in (ParticleFlowNetwork(), ParticleNet(k=3, blocks=((8,),))):
        model.eval()
        with torch.no_grad():
            a = model(particles[:1], mask[:1], *( [points[:1]] if isinstance(model, ParticleNet) else []))
            b = model(particles[:1, perm], mask[:1, perm], *([points[:1, perm]] if isinstance(model, ParticleNet) else []))
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_standardisation_is_in_the_state_dict():
    model = JetMLP(num_features=2, feature_mean=[1.0, 2.0], feature_std=[3.0, 4.0])
    state = model.state_dict()
    assert state["norm.mean"].tolist() == [1.0, 2.0] and state["norm.std"].tolist() == [3.0, 4.0]


def test_pairwise_features_are_symmetric_and_finite():
    (_, _, vectors) = example_particles(with_vectors=True)
    pairs = pairwise_features(vectors)
    assert pairs.shape == (3, 11, 11, 4) and torch.isfinite(pairs).all()
    torch.testing.assert_close(pairs, pairs.transpose(1, 2))
