"""Every architecture of KNOWN_NETWORKS learns a tiny separable set above chance under the evaluation
protocol (issue 17 item 14: AlexNet sat at exactly chance with PyTorch's default initialisation)."""

from __future__ import annotations

import pytest
import torch

from haba_core import KNOWN_NETWORKS, EvalConfig, FactorizedDataset, ImageDataset, Preprocessor, evaluate, get_network
from haba_core.factorization import SyntheticSet

CLASSES, SIZE = 4, 16


def bands(per_class: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c: a bright horizontal band in rows 4c..4c+3, plus noise."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c in range(CLASSES):
        base = torch.zeros(channels, SIZE, SIZE)
        base[:, 4 * c:4 * c + 4, :] = 1.0
        xs.append(base + 0.2 * torch.rand((per_class, channels, SIZE, SIZE), generator=g))
        ys.append(torch.full((per_class,), c, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def tiny_sets(channels: int):
    x, y = bands(3, channels, 0)
    ident = Preprocessor((0.0,) * channels, (1.0,) * channels)
    train = FactorizedDataset(SyntheticSet(x, y, (channels, SIZE, SIZE), CLASSES), ident,
                              [f"c{i}" for i in range(CLASSES)], {"dataset": "bands"})
    tx, ty = bands(10, channels, 1)
    test = ImageDataset(name="bands", images=tx, labels=ty, classes=[f"c{i}" for i in range(CLASSES)],
                        mean=(0.0,) * channels, std=(1.0,) * channels, split="test")
    return train, test


@pytest.mark.parametrize("arch,channels", [(a, 3) for a in KNOWN_NETWORKS] + [("AlexNet", 1), ("ConvNet", 1)])
def test_every_architecture_learns_a_tiny_separable_set(arch, channels):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train, test = tiny_sets(channels)
        cfg = EvalConfig(arch=arch, runs=1, epochs=20, lr=0.01, batch_size=4, dsa=False, net_width=16,
                         device="cpu", seed=0)
        result = evaluate(train, test, cfg)
    finally:
        torch.set_num_threads(threads)
    assert result.mean > 100.0 / CLASSES + 25, (arch, channels, result.accuracies)


def test_alexnet_keeps_the_signal_through_its_layers():
    torch.manual_seed(0)
    net = get_network("AlexNet", 3, 10, 32)
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        assert float(net(x).std()) > 0.2  # PyTorch's default init gave ~0.02: a dead start
