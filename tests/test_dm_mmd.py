"""DM with a kernel (MMD) term: matches spread as well as means, so diversity of the composed set counts."""

import pytest
import torch

from haba_core import ConfigError, recipe_config
from haba_core.objectives import DMObjective
from haba_core.objectives.dm import DMConfig, gaussian_mmd

from test_objectives import _ctx, _lowers_own_loss, _noise_syn


def test_gaussian_mmd_is_zero_for_equal_sets_and_sees_spread_not_only_means():
    g = torch.Generator().manual_seed(0)
    real = torch.randn((200, 16), generator=g)
    assert float(gaussian_mmd(real, real, (1.0,))) == pytest.approx(0.0, abs=1e-6)
    spread = torch.randn((50, 16), generator=g)
    collapsed = spread.mean(0, keepdim=True).expand(50, -1) + 0.01 * torch.randn((50, 16), generator=g)
    # same mean (to sampling noise), very different spread: the mean-only loss hardly tells them apart
    assert float(gaussian_mmd(real, collapsed, (0.5, 1.0, 2.0))) > 5 * float(gaussian_mmd(real, spread, (0.5, 1.0, 2.0)))


def test_mmd_gradient_reaches_the_synthetic_images_and_lowers_the_loss():
    ctx, _, _ = _ctx()
    syn, labels = _noise_syn(n_per_class=3)
    obj = DMObjective(ctx, DMConfig(batch_real=16, match="mmd"))
    before, after = _lowers_own_loss(obj, syn, labels, 30, 1.0)
    assert after < before


def test_mmd_term_adds_to_the_mean_term():
    ctx, _, _ = _ctx()
    syn, labels = _noise_syn(n_per_class=3)
    mean = DMObjective(ctx, DMConfig(batch_real=16)).loss(syn, labels, torch.Generator().manual_seed(1))
    mmd = DMObjective(ctx, DMConfig(batch_real=16, match="mmd")).loss(syn, labels, torch.Generator().manual_seed(1))
    assert float(mmd) > float(mean) > 0


@pytest.mark.parametrize("bad", [dict(match="median"), dict(match="mmd", mmd_bandwidths=()),
                                 dict(match="mmd", mmd_bandwidths=(1.0, -1.0)), dict(mmd_weight=-1.0)])
def test_bad_mmd_settings_raise(bad):
    ctx, _, _ = _ctx()
    with pytest.raises(ConfigError):
        DMObjective(ctx, DMConfig(**bad))


def test_config_layering_reaches_the_dm_match():
    cfg = recipe_config("modest", dm={"match": "mmd"})
    assert cfg.dm.match == "mmd" and cfg.dm.batch_real == DMConfig().batch_real


@pytest.mark.parametrize("match", ["mean", "mmd"])
def test_batched_classes_give_the_per_class_loss_and_gradient(match):
    """One forward pass for all classes (issue 19) computes what one pass per class computes."""
    ctx, _, _ = _ctx(dsa=True)
    syn, labels = _noise_syn(n_per_class=3)
    out = {}
    for batched in (True, False):
        x = syn.clone().requires_grad_(True)
        loss = DMObjective(ctx, DMConfig(batch_real=16, match=match, batched_classes="on" if batched else "off")).loss(
            x, labels, torch.Generator().manual_seed(7))
        loss.backward()
        out[batched] = (loss.detach(), x.grad)
    assert torch.allclose(out[True][0], out[False][0], rtol=1e-5, atol=1e-6)
    assert torch.allclose(out[True][1], out[False][1], rtol=1e-4, atol=1e-7)
    assert out[True][1].abs().sum() > 0


def test_batch_norm_networks_keep_the_per_class_path(monkeypatch):
    from haba_core.objectives import dm as dm_module

    ctx, _, _ = _ctx()
    syn, labels = _noise_syn(n_per_class=3)
    called = []
    monkeypatch.setattr(dm_module.DMObjective, "_batched_loss", lambda self, *a: called.append(1) or a)
    monkeypatch.setattr(dm_module, "_has_batch_norm", lambda net: True)
    DMObjective(ctx, DMConfig(batch_real=16, batched_classes="on")).loss(syn, labels, torch.Generator().manual_seed(7))
    assert not called
    monkeypatch.setattr(dm_module, "_has_batch_norm", lambda net: False)
    DMObjective(ctx, DMConfig(batch_real=16)).loss(syn, labels, torch.Generator().manual_seed(7))
    assert not called  # "auto": per class on a CPU
    DMObjective(ctx, DMConfig(batch_real=16, batched_classes=True)).loss(syn, labels, torch.Generator().manual_seed(7))
    assert called
    with pytest.raises(ConfigError, match="batched_classes"):
        DMObjective(ctx, DMConfig(batched_classes="sometimes"))


def test_resuming_ignores_only_how_dm_batches_classes():
    from haba_core.distillation.checkpoint import check_compatible

    cfg = recipe_config("modest").to_dict()
    old = {**cfg, "dm": {k: v for k, v in cfg["dm"].items() if k != "batched_classes"}}
    check_compatible(old, cfg)  # a checkpoint from before the field resumes
    with pytest.raises(ConfigError):
        check_compatible({**cfg, "dm": {**cfg["dm"], "batch_real": 7}}, cfg)
