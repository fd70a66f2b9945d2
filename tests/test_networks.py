"""Tests of the network registry and the networks' shared contract."""

import pytest
import torch
from torch.func import functional_call

from haba_core.errors import ConfigError, UnknownNameError
from haba_core.networks import KNOWN_NETWORKS, AlexNet, ConvNet, ResNet18, VGG11, get_network

SIZES = [(1, 28), (3, 8), (3, 32)]


@pytest.mark.parametrize("name", KNOWN_NETWORKS)
@pytest.mark.parametrize("channels,size", SIZES)
def test_forward_features_and_embed(name, channels, size):
    net = get_network(name, channels, 7, size).eval()
    x = torch.randn(2, channels, size, size)
    logits, feats = net(x, return_features=True)
    assert logits.shape == (2, 7) and feats.shape == (2, net.feature_dim)
    assert net.num_classes == 7 and isinstance(net.feature_dim, int)
    assert torch.allclose(net(x), logits)
    assert torch.allclose(net.embed(x), feats)
    assert torch.allclose(net.classifier(feats), logits, atol=1e-6)


@pytest.mark.parametrize("name", ["ConvNet", "ConvNetD5", "AlexNet", "VGG11"])
@pytest.mark.parametrize("size", [64, 128])
def test_large_images(name, size):
    net = get_network(name, 3, 4, size)
    assert net(torch.randn(1, 3, size, size)).shape == (1, 4)


def test_resnet_large_and_tuple_size():
    net = get_network("ResNet18", 3, 4, (64, 64))
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 4)
    assert get_network("ConvNet", 1, 3, (16, 16)).feature_dim == 128 * 2 * 2


def test_convnet_feature_dims_and_pool_skip():
    assert get_network("ConvNet", 3, 10, 32).feature_dim == 128 * 4 * 4
    assert get_network("ConvNetD4", 3, 10, 64).feature_dim == 128 * 4 * 4
    # 8 -> 4 -> 2 -> 1 -> (skip) -> (skip): never below 1x1
    net = get_network("ConvNetD5", 3, 10, 8)
    assert net.feature_dim == 128
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_lookup_case_insensitive_aliases_and_kwargs():
    assert isinstance(get_network("convnet", 3, 10, 32), ConvNet)
    assert isinstance(get_network("RESNET18", 3, 10, 32), ResNet18)
    assert isinstance(get_network("vgg11", 3, 10, 32), VGG11)
    assert isinstance(get_network("alexnet", 3, 10, 32), AlexNet)
    bn = get_network("ConvNetBN", 3, 10, 32)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules())
    rbn = get_network("ResNet18BN", 3, 10, 8)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in rbn.modules())
    inorm = get_network("ConvNet", 3, 10, 32)
    gn = [m for m in inorm.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(gn) == 3 and gn[0].num_groups == gn[0].num_channels == 128 and gn[0].affine
    net = get_network("ConvNet", 3, 10, 32, width=16, depth=2, norm="none")
    assert net.feature_dim == 16 * 8 * 8
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())


def test_unknown_name_and_bad_options():
    with pytest.raises(UnknownNameError) as info:
        get_network("LeNet", 3, 10, 32)
    assert all(n in str(info.value) for n in KNOWN_NETWORKS)
    with pytest.raises(ConfigError):
        get_network("ConvNet", 3, 10, 32, norm="weirdnorm")
    with pytest.raises(ConfigError):
        get_network("AlexNet", 3, 10, 32, width=3)


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm", "layernorm", "groupnorm", "none"])
@pytest.mark.parametrize("pooling", ["avgpool", "maxpool", "none"])
def test_convnet_options(norm, pooling):
    net = ConvNet(3, 5, 8, width=8, depth=2, norm=norm, pooling=pooling)
    logits, feats = net(torch.randn(2, 3, 8, 8), return_features=True)
    assert logits.shape == (2, 5) and feats.shape == (2, net.feature_dim)


@pytest.mark.parametrize("name", KNOWN_NETWORKS)
def test_functional_call_matches_and_differentiates(name):
    net = get_network(name, 3, 5, 8)
    x = torch.randn(2, 3, 8, 8)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
    out = functional_call(net, params, (x,))
    assert torch.allclose(out, net(x), atol=1e-6)
    logits, feats = functional_call(net, params, (x,), {"return_features": True})
    assert torch.allclose(logits, out, atol=1e-6) and feats.shape == (2, net.feature_dim)
    # one unrolled SGD step, then a second-order gradient as trajectory matching needs
    loss = torch.nn.functional.cross_entropy(out, torch.tensor([0, 1]))
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    stepped = {k: p - 0.01 * g for (k, p), g in zip(params.items(), grads)}
    loss2 = functional_call(net, stepped, (x,)).pow(2).mean()
    g2 = torch.autograd.grad(loss2, params["classifier.weight"])[0]
    assert torch.isfinite(g2).all() and g2.abs().sum() > 0


@pytest.mark.parametrize("name", ["ResNet18", "VGG11"])
def test_instance_norm_keeps_information_on_1x1_maps(name):
    # 8x8 inputs shrink to 1x1 maps; plain GroupNorm(c, c) would make every feature equal to its bias
    net = get_network(name, 1, 10, 8).eval()
    with torch.no_grad():
        _, f = net(torch.randn(4, 1, 8, 8), return_features=True)
    assert f.std(0).max() > 1e-4
