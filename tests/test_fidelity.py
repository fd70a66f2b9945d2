"""Issue 15: `paper` is the paper (recipe, adversary, normalisation, Tab. 9 hallucinators)."""

import pytest
import torch

from haba_core import (Adversary, ConfigError, DistillConfig, HallucinatorBank, HallucinatorConfig, distill,
                       recipe, recipe_config)
from haba_core.factorization.hallucinator import hallucinator_parameter_count

from core_fixtures import separable_dataset, tiny_config


@pytest.mark.parametrize("objective", ["dm", "dc", "dsa", "mtt"])
def test_paper_recipe_is_the_paper(objective):
    cfg = recipe_config("paper", objective=objective)
    assert cfg == DistillConfig(objective=objective).validate()
    assert cfg.hallucinator.init == "random" and cfg.hallucinator.depth == 1
    assert cfg.resolved_lr_hallucinators == cfg.resolved_lr_bases  # η_H = η_B (§4.1)
    assert (cfg.lambda_dd, cfg.lambda_cos, cfg.lambda_con, cfg.lambda_task) == (1.0, 0.1, 0.1, 1.0)
    assert (cfg.lr_adversary, cfg.adversary_order, cfg.contrastive_normalization) == (0.001, "after", "paper")
    assert cfg.hallucinators_per_step == 2 and cfg.hallucinators == 5


def test_toolkit_improvements_live_in_other_recipes():
    old = recipe_config("paper-pca", objective="dm")
    assert old.hallucinator.init == "pca" and old.resolved_lr_hallucinators == old.resolved_lr_bases / 100
    assert recipe_config("paper-pca", objective="dc").resolved_lr_hallucinators == 0.1
    assert recipe("modest") == {"parameterization": "idc-haba",
                                "hallucinator": {"init": "pca", "affine_stride": 2, "layout": "flat"},
                                "lambda_cos": 0.0, "lambda_con": 0.0, "lambda_task": 0.0,
                                "hallucinator_optimizer": "adam", "lr_hallucinators": 1e-4, "budget_rule": "fill"}
    assert recipe_config("modest", hallucinator={"depth": 2}).hallucinator.layout == "flat"


def test_nested_tables_keep_the_paper_defaults():
    cfg = DistillConfig.from_dict({"hallucinator": {"depth": 2}})
    assert (cfg.hallucinator.init, cfg.hallucinator.layout, cfg.hallucinator.depth) == ("random", "pyramid", 2)
    with pytest.raises(ConfigError, match="adversary_order"):
        DistillConfig(adversary_order="sideways").validate()


def test_tab9_and_tab10_parameter_counts():
    def count(**kw):
        cfg = HallucinatorConfig(init="random", **kw)
        bank = HallucinatorBank(1, 3, 3, (32, 32), cfg)
        assert bank.parameter_count_each() == hallucinator_parameter_count(3, 3, (32, 32), cfg)
        assert bank(torch.randn(2, 3, 32, 32), 0).shape == (2, 3, 32, 32)
        return bank.parameter_count_each()

    assert [count(depth=d, layout="pyramid") for d in range(4)] == [6144, 6312, 10963, 16131]  # Tab. 9
    assert [count(channels=c) for c in (3, 8, 16)] == [6312, 16827, 33651]  # Tab. 10
    assert [count(depth=d, layout="flat") for d in (2, 3)] == [6480, 6648]  # the option: before issue 15
    with pytest.raises(ConfigError, match="layout='flat'"):
        HallucinatorConfig(depth=2, layout="pyramid", init="pca").validate()


def _adversary_inputs(monkeypatch, **overrides):
    seen = []
    original = Adversary.step

    def spy(self, images, labels, basis_index, augment=None):
        seen.append((images.clone(), basis_index.clone(), augment, self.optimizer.param_groups[0]["momentum"]))
        return original(self, images, labels, basis_index, augment)

    monkeypatch.setattr(Adversary, "step", spy)
    cfg = tiny_config(iterations=1, hallucinators=2, dsa=True, **overrides)
    result = distill(separable_dataset(), cfg)
    return seen[0], result


def test_adversary_trains_on_pairs_recomposed_after_the_update(monkeypatch):
    (images, b_idx, augment, momentum), result = _adversary_inputs(monkeypatch)
    synth = result.synthetic
    with torch.no_grad():
        n = b_idx.numel() // 2
        h = torch.tensor([0] * n + [1] * n)
        after = torch.cat([synth.compose(b_idx[:n], h[:n]), synth.compose(b_idx[n:], h[n:])])
    # compose_pairs puts the two hallucinators in the random order drawn; match either
    flipped = torch.cat([after[n:], after[:n]])
    assert torch.allclose(images, after, atol=1e-6) or torch.allclose(images, flipped, atol=1e-6)
    assert augment is not None and momentum == 0.9  # DSA on F's inputs, the authors' momentum


def test_adversary_order_before_and_legacy_settings(monkeypatch):
    (images, b_idx, augment, momentum), result = _adversary_inputs(
        monkeypatch, adversary_order="before", adversary_dsa=False, adversary_momentum=0.5)
    synth = result.synthetic
    with torch.no_grad():
        n = b_idx.numel() // 2
        now = torch.cat([synth.compose(b_idx[:n], torch.zeros(n, dtype=torch.long)),
                         synth.compose(b_idx[n:], torch.ones(n, dtype=torch.long))])
    assert not torch.allclose(images, now, atol=1e-6) and not torch.allclose(images, now.roll(n, 0), atol=1e-6)
    assert augment is None and momentum == 0.5


def test_tab11_shared_encoder_decoder_with_per_hallucinator_affine():
    from haba_core import SyntheticSet, plan_budget

    cfg = HallucinatorConfig(init="random", shared_codec=True)
    bank = HallucinatorBank(5, 3, 3, (32, 32), cfg)
    assert sum(p.numel() for p in bank.parameters()) == 168 + 5 * 6144  # codec once, σ/μ per hallucinator
    assert bank.enc_w0.shape[0] == 1 and bank.sigma.shape[0] == 5
    plan = plan_budget(image_shape=(3, 32, 32), num_classes=10, bpc=1, hallucinators=5, hallucinator=cfg)
    unshared = plan_budget(image_shape=(3, 32, 32), num_classes=10, bpc=1, hallucinators=5,
                           hallucinator=HallucinatorConfig(init="random"))
    assert plan.storage.hallucinators == 168 + 5 * 6144 < unshared.storage.hallucinators
    result = distill(separable_dataset(), tiny_config(iterations=2, hallucinator=HallucinatorConfig(
        init="random", shared_codec=True)))
    synth: SyntheticSet = result.synthetic
    assert result.storage().parameters == synth.stored_parameter_count()
    x = torch.randn(2, 1, 8, 8)
    a, b = synth.hallucinators(x, 0), synth.hallucinators(x, 1)
    assert not torch.allclose(a, b)  # different σ/μ through the same encoder/decoder


def test_shared_codec_and_pyramid_sets_round_trip_through_the_file_format(tmp_path):
    from haba_core import FactorizedDataset

    for i, hall in enumerate((HallucinatorConfig(init="random", shared_codec=True),
                              HallucinatorConfig(init="random", layout="pyramid", depth=2))):
        result = distill(separable_dataset(), tiny_config(iterations=1, hallucinator=hall))
        result.save(tmp_path / str(i))
        back = FactorizedDataset.load(tmp_path / str(i))
        assert back.synthetic.hallucinator_config == result.synthetic.hallucinator_config
        for k, v in result.tensors().items():
            assert torch.equal(v, back.tensors()[k]), k
