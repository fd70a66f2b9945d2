import pytest
import torch

from haba_core import ConfigError, HallucinatorBank, HallucinatorConfig, SyntheticSet
from haba_core.factorization import hallucinator_parameter_count


@pytest.mark.parametrize("cfg", [HallucinatorConfig(), HallucinatorConfig(depth=2, channels=4),
                                 HallucinatorConfig(depth=0), HallucinatorConfig.official(),
                                 HallucinatorConfig(init="identity"), HallucinatorConfig(depth=2, padding="valid", init="random"),
                                 HallucinatorConfig(init="random")])
def test_shapes_and_parameter_count(cfg):
    bank = HallucinatorBank(3, 3, 3, (8, 8), cfg)
    x = torch.randn(5, 3, 8, 8)
    out = bank(x, torch.tensor([0, 1, 2, 1, 0]))
    assert out.shape == (5, 3, 8, 8)
    assert bank.parameter_count_each() == hallucinator_parameter_count(3, 3, (8, 8), cfg)
    assert sum(p.numel() for p in bank.parameters()) == 3 * bank.parameter_count_each()


def test_paper_default_matches_paper_parameter_count():
    # paper Tab. 9: depth 1, c'' = 3 on 32x32 RGB -> 6,312 parameters; depth 0 -> 6,144
    assert hallucinator_parameter_count(3, 3, (32, 32), HallucinatorConfig()) == 6312
    assert hallucinator_parameter_count(3, 3, (32, 32), HallucinatorConfig(depth=0)) == 6144


def test_one_channel_bases_to_rgb_images():
    bank = HallucinatorBank(2, 1, 3, (8, 8), HallucinatorConfig())
    assert bank(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])).shape == (4, 3, 8, 8)


def test_batched_composition_equals_per_sample():
    bank = HallucinatorBank(4, 3, 3, (8, 8), HallucinatorConfig(depth=2))
    x = torch.randn(9, 3, 8, 8)
    idx = torch.tensor([3, 0, 1, 3, 2, 0, 1, 1, 2])
    batched = bank(x, idx)
    looped = torch.cat([bank.single(x[i:i + 1], int(idx[i])) for i in range(9)])
    torch.testing.assert_close(batched, looped)


def test_hallucinators_differ_and_identity_init_is_near_identity():
    x = torch.randn(6, 3, 8, 8)
    rand = HallucinatorBank(2, 3, 3, (8, 8), HallucinatorConfig(init="random"),
                            generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(rand.single(x, 0), rand.single(x, 1))
    ident = HallucinatorBank(2, 3, 3, (8, 8), HallucinatorConfig(init="identity", init_noise=0.0))
    ident.reset_parameters(inputs=x)
    torch.testing.assert_close(ident.single(x, 1), x, atol=1e-5, rtol=1e-5)
    off = HallucinatorBank(1, 3, 3, (8, 8), HallucinatorConfig.official().__class__(
        activation="none", padding="valid", init="identity", init_noise=0.0))
    inner = off.single(x, 0)[..., 2:-2, 2:-2]
    torch.testing.assert_close(inner, x[..., 2:-2, 2:-2], atol=1e-5, rtol=1e-5)


def test_gradients_reach_bases_and_hallucinators():
    synth = SyntheticSet(torch.randn(4, 3, 8, 8), torch.tensor([0, 0, 1, 1]), (3, 8, 8), 2, num_hallucinators=3)
    imgs, labels, b, h = synth.compose_pairs(torch.arange(4), torch.tensor([0, 2]))
    assert imgs.shape == (8, 3, 8, 8) and labels.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    imgs.square().mean().backward()
    assert synth.bases.grad is not None and synth.bases.grad.abs().sum() > 0
    grads = {n: p.grad for n, p in synth.hallucinators.named_parameters()}
    assert all(g is not None for g in grads.values())
    assert grads["sigma"][0].abs().sum() > 0 and grads["sigma"][2].abs().sum() > 0
    assert grads["sigma"][1].abs().sum() == 0  # hallucinator 1 was not sampled


def test_per_class_hallucinators_use_their_class_set():
    synth = SyntheticSet(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]), (1, 8, 8), 4,
                         num_hallucinators=2, per_class=True)
    assert synth.hallucinators.count == 8
    assert synth.bank_index(torch.tensor([0, 3]), torch.tensor([1, 1])).tolist() == [1, 7]


def test_invalid_configurations_raise():
    with pytest.raises(ConfigError):
        HallucinatorConfig(activation="tanh").validate()
    with pytest.raises(ConfigError):
        HallucinatorBank(1, 1, 3, (8, 8), HallucinatorConfig(depth=0))
    with pytest.raises(ConfigError):
        SyntheticSet(torch.randn(2, 1, 8, 8), torch.tensor([0, 1]), (3, 8, 8), 2)


def test_materialize_and_plain_set():
    synth = SyntheticSet(torch.randn(6, 1, 8, 8), torch.arange(6) % 3, (1, 8, 8), 3, num_hallucinators=4)
    imgs, labels = synth.materialize()
    assert imgs.shape == (24, 1, 8, 8) and labels.shape == (24,)
    plain = SyntheticSet(torch.randn(6, 1, 8, 8), torch.arange(6) % 3, (1, 8, 8), 3)
    imgs, _ = plain.materialize()
    torch.testing.assert_close(imgs, plain.bases.detach())


def test_idc_upsamples_downsampled_bases():
    synth = SyntheticSet(torch.randn(2, 3, 4, 4), torch.tensor([0, 1]), (3, 8, 8), 2)
    assert synth.compose(torch.arange(2)).shape == (2, 3, 8, 8)


def test_pca_init_starts_from_distinct_realistic_variations():
    from haba_core.factorization import within_class_directions
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    # within-class variation lies along one pixel pattern
    pattern = torch.zeros(1, 8, 8)
    pattern[0, 2, :] = 1.0
    images = labels.view(-1, 1, 1, 1).float() + torch.randn(40, 1, 1, 1, generator=g) * pattern
    dirs, std = within_class_directions(images, labels, 1)
    cos = torch.nn.functional.cosine_similarity(dirs[0].flatten(), pattern.flatten(), dim=0).abs()
    assert cos > 0.99 and std[0] > 0.5
    synth = SyntheticSet(images[:4], labels[:4], (1, 8, 8), 4, num_hallucinators=2,
                         hallucinator_config=HallucinatorConfig(init="pca", init_noise=0.0))
    synth.init_hallucinators_from_data(images, labels)
    out, _, b, h = synth.compose_pairs(torch.arange(4), torch.tensor([0, 1]))
    diff = out[:4] - out[4:]
    # hallucinator 0 adds +s·d, hallucinator 1 adds −s·d: their difference is 2·s·d for every basis
    torch.testing.assert_close(diff, (2 * std[0] * dirs[0]).expand(4, -1, -1, -1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close((out[:4] + out[4:]) / 2, images[:4], atol=1e-4, rtol=1e-4)


def test_strided_affine_is_cheaper_and_keeps_shapes():
    cfg = HallucinatorConfig(affine_stride=4, init="random")
    bank = HallucinatorBank(2, 1, 1, (28, 28), cfg)
    assert bank.sigma.shape == (2, 1, 7, 7)
    assert bank.parameter_count_each() == hallucinator_parameter_count(1, 1, (28, 28), cfg) == 2 * 49 + 20
    out = bank(torch.randn(3, 1, 28, 28), torch.tensor([0, 1, 0]))
    assert out.shape == (3, 1, 28, 28)
    out.sum().backward()
    assert bank.mu.grad.abs().sum() > 0


def test_match_stats_anchors_output_scale_and_keeps_gradients():
    cfg = HallucinatorConfig(init="random", match_stats=True)
    bank = HallucinatorBank(2, 3, 3, (8, 8), cfg)
    with torch.no_grad():
        bank.sigma.mul_(25.0)  # a drifted hallucinator: 25× the scale
        bank.mu.add_(3.0)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    out = bank(x, torch.tensor([0, 1, 1, 0]))
    assert torch.allclose(out.flatten(1).mean(1), x.flatten(1).mean(1), atol=1e-4)
    assert torch.allclose(out.flatten(1).std(1), x.flatten(1).std(1), atol=1e-3)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad.abs().sum() > 0 and bank.sigma.grad.abs().sum() > 0
    plain = HallucinatorBank(2, 3, 3, (8, 8), HallucinatorConfig(init="random"))
    with torch.no_grad():
        plain.sigma.mul_(25.0)
    assert plain(x, 0).flatten(1).std(1).mean() > 3 * x.flatten(1).std(1).mean()  # without it the scale drifts


def test_match_stats_survives_a_save_load_round_trip(tmp_path):
    from haba_core import FactorizedDataset, distill

    from core_fixtures import separable_dataset, tiny_config

    result = distill(separable_dataset(), tiny_config(hallucinator=HallucinatorConfig(match_stats=True)))
    result.save(tmp_path / "fd")
    loaded = FactorizedDataset.load(tmp_path / "fd")
    assert loaded.synthetic.hallucinators.config.match_stats
    a, _ = result.materialize()
    b, _ = loaded.materialize()
    assert torch.equal(a, b)
