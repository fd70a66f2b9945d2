"""MTT's per-step work (issue 19): the paper's one hallucination per basis per unrolled step vs the old pairs."""

import pytest
import torch

from haba_core import ConfigError, distill
from haba_core.distillation.loop import _per_step_draw
from haba_core.factorization import SyntheticSet
from haba_core.objectives import mtt as mtt_mod

from core_fixtures import expert_buffer, separable_dataset, tiny_config


@pytest.fixture(scope="module")
def buffer(tmp_path_factory):
    out = tmp_path_factory.mktemp("mtt-buffer")
    expert_buffer(out)
    return out


def mtt_config(buffer, composition=None, **overrides):
    cfg = tiny_config(objective="mtt", dsa=False, iterations=2, **overrides)
    cfg.mtt.syn_steps, cfg.mtt.expert_epochs, cfg.mtt.max_start_epoch, cfg.mtt.buffer = 2, 1, 2, str(buffer)
    if composition is not None:
        cfg.mtt.composition = composition
    return cfg


def step_batch_sizes(monkeypatch, buffer, composition):
    sizes = []
    real_call = mtt_mod.functional_call

    def spy(net, params, args):
        sizes.append(args[0].shape[0])
        return real_call(net, params, args)
    monkeypatch.setattr(mtt_mod, "functional_call", spy)
    fd = distill(separable_dataset(), mtt_config(buffer, composition))
    return sizes, fd.synthetic.num_bases


def test_default_unrolls_each_step_on_one_image_per_basis(monkeypatch, buffer):
    assert mtt_mod.MTTConfig().composition == "per_step"
    sizes, bases = step_batch_sizes(monkeypatch, buffer, None)
    assert sizes and set(sizes) == {bases}


def test_pairs_unrolls_on_every_composed_pair(monkeypatch, buffer):
    sizes, bases = step_batch_sizes(monkeypatch, buffer, "pairs")
    assert set(sizes) == {2 * bases}  # hallucinators_per_step = 2


def test_per_step_draw_composes_each_basis_through_one_of_its_hallucinators():
    g = torch.Generator().manual_seed(0)
    synth = SyntheticSet(torch.randn(6, 3, 8, 8), torch.arange(3).repeat(2), (3, 8, 8), 3, num_hallucinators=4,
                         generator=g)
    basis_idx = torch.tensor([5, 1, 3, 0])
    images, labels = _per_step_draw(synth, basis_idx, 4, g)(torch.tensor([2, 0, 1]))
    chosen = basis_idx[[2, 0, 1]]
    assert torch.equal(labels, synth.labels[chosen])
    with torch.no_grad():
        for row, b in zip(images, chosen):
            every = synth.compose(b.repeat(4), torch.arange(4))
            assert min(float((every[j] - row).abs().max()) for j in range(4)) < 1e-5


def test_both_compositions_learn_and_differ(buffer):
    a = distill(separable_dataset(), mtt_config(buffer, "per_step"))
    b = distill(separable_dataset(), mtt_config(buffer, "pairs"))
    assert torch.isfinite(a.synthetic.bases).all() and torch.isfinite(b.synthetic.bases).all()
    assert not torch.allclose(a.synthetic.bases, b.synthetic.bases)
    again = distill(separable_dataset(), mtt_config(buffer, "per_step"))
    assert torch.equal(a.synthetic.bases, again.synthetic.bases)


def test_unknown_composition_is_a_config_error(buffer):
    with pytest.raises(ConfigError, match="mtt.composition"):
        distill(separable_dataset(), mtt_config(buffer, "everything"))


def test_per_step_shared_draws_one_hallucinator_for_all_bases_of_a_step(monkeypatch, buffer):
    g = torch.Generator().manual_seed(3)
    synth = SyntheticSet(torch.randn(6, 3, 8, 8), torch.arange(3).repeat(2), (3, 8, 8), 3, num_hallucinators=4,
                         generator=g)
    basis_idx = torch.arange(6)
    with torch.no_grad():
        for _ in range(5):
            images, _ = _per_step_draw(synth, basis_idx, 4, g, shared=True)(torch.arange(6))
            matches = [torch.allclose(images, synth.compose(basis_idx, torch.full((6,), j)), atol=1e-5)
                       for j in range(4)]
            assert sum(matches) == 1
    sizes, bases = step_batch_sizes(monkeypatch, buffer, "per_step_shared")
    assert set(sizes) == {bases}  # the same work per step as per_step
