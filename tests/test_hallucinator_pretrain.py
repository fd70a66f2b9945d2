"""Hallucinators pretrained on real same-class neighbour pairs (hallucinator_pretrain_steps)."""

import pytest
import torch
import torch.nn.functional as F

from haba_core import ConfigError, HallucinatorConfig, SyntheticSet, distill
from haba_core.distillation.checkpoint import check_compatible
from haba_core.factorization.pretrain import neighbour_pairs, pretrain_hallucinators, to_basis_shape

from core_fixtures import separable_dataset, tiny_config


def shifted_dataset(per_class: int = 16, seed: int = 0):
    """Two classes of 3×8×8 images; within a class, images differ by a brightness offset (a learnable change)."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c in range(2):
        base = torch.rand((1, 3, 8, 8), generator=g)
        offsets = torch.linspace(-0.5, 0.5, per_class).view(-1, 1, 1, 1)
        xs.append(base + offsets + 0.01 * torch.randn((per_class, 3, 8, 8), generator=g))
        ys.append(torch.full((per_class,), c))
    return torch.cat(xs), torch.cat(ys)


def test_neighbour_pairs_are_the_nearest_other_images_of_the_same_class():
    x, y = shifted_dataset()
    src, dst = neighbour_pairs(x, y, 2, torch.Generator().manual_seed(0))
    assert src.shape == dst.shape == (2 * 16 * 2,)
    assert torch.equal(y[src], y[dst]) and not bool((src == dst).any())
    for s in src.unique().tolist():
        same = (y == y[s]).nonzero().flatten()
        same = same[same != s]
        d = (x[same] - x[s]).flatten(1).norm(dim=1)
        expected = set(same[d.argsort()[:2]].tolist())
        assert set(dst[src == s].tolist()) == expected
    with pytest.raises(ConfigError):
        neighbour_pairs(x, y, 0, torch.Generator())
    with pytest.raises(ConfigError, match="two real images"):
        neighbour_pairs(x[:1], y[:1], 1, torch.Generator())


def test_to_basis_shape_averages_channels_and_area_resizes():
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(to_basis_shape(x, (3, 8, 8)), x)
    out = to_basis_shape(x, (1, 4, 4))
    assert torch.allclose(out, F.interpolate(x.mean(1, keepdim=True), size=(4, 4), mode="area"))


def test_pretraining_lowers_the_loss_and_leaves_the_bases_alone():
    x, y = shifted_dataset()
    g = torch.Generator().manual_seed(0)
    synth = SyntheticSet(x[:4].clone(), y[:4].clone(), (3, 8, 8), 2, 3, HallucinatorConfig(init="identity"), generator=g)
    bases = synth.bases.detach().clone()
    losses = pretrain_hallucinators(synth, x, y, steps=60, lr=1e-2, neighbours=3, batch=32,
                                    generator=torch.Generator().manual_seed(1))
    assert len(losses) == 60 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])
    assert torch.equal(synth.bases, bases)
    again = SyntheticSet(x[:4].clone(), y[:4].clone(), (3, 8, 8), 2, 3, HallucinatorConfig(init="identity"),
                         generator=torch.Generator().manual_seed(0))
    pretrain_hallucinators(again, x, y, steps=60, lr=1e-2, neighbours=3, batch=32,
                           generator=torch.Generator().manual_seed(1))
    for (k, a), b in zip(synth.hallucinators.state_dict().items(), again.hallucinators.state_dict().values()):
        assert torch.equal(a, b), k  # same seed, same bank
    plain = SyntheticSet(x[:4].clone(), y[:4].clone(), (3, 8, 8), 2)
    with pytest.raises(ConfigError, match="factorized"):
        pretrain_hallucinators(plain, x, y, steps=1)


def test_distill_pretrains_when_asked_and_is_deterministic():
    data = separable_dataset()
    base = distill(data, tiny_config(iterations=0))
    pre = distill(data, tiny_config(iterations=0, hallucinator_pretrain_steps=5))
    pre2 = distill(data, tiny_config(iterations=0, hallucinator_pretrain_steps=5))
    bank = lambda fd: fd.synthetic.hallucinators.state_dict()  # noqa: E731
    assert any(not torch.equal(bank(pre)[k], v) for k, v in bank(base).items())
    assert all(torch.equal(bank(pre2)[k], v) for k, v in bank(pre).items())
    assert torch.equal(base.synthetic.bases, pre.synthetic.bases)  # the bases' init does not change
    for bad in (dict(hallucinator_pretrain_steps=-1), dict(hallucinator_pretrain_lr=0.0),
                dict(hallucinator_pretrain_neighbours=0)):
        with pytest.raises(ConfigError, match="hallucinator_pretrain"):
            tiny_config(**bad).validate()
    current = tiny_config().to_dict()
    check_compatible({k: v for k, v in current.items() if not k.startswith("hallucinator_pretrain")}, current)
