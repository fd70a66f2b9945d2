"""Grouped-convolution composition (issue 19): one call per layer gives the per-hallucinator loop's tensors."""

import pytest
import torch

from haba_core.factorization.hallucinator import HallucinatorBank, HallucinatorConfig

CONFIGS = {
    "depth1-same-relu": HallucinatorConfig(init="random"),
    "depth0-affine": HallucinatorConfig(depth=0, init="random"),
    "official-valid": HallucinatorConfig.official(),
    "pyramid-depth2": HallucinatorConfig(depth=2, layout="pyramid", init="random"),
    "flat-depth2-ch8": HallucinatorConfig(depth=2, channels=8, init="random"),
    "affine-stride2": HallucinatorConfig(init="random", affine_stride=2),
    "shared-codec": HallucinatorConfig(init="random", shared_codec=True),
    "pyramid-depth3-stats": HallucinatorConfig(depth=3, layout="pyramid", init="random", match_stats=True),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_grouped_equals_the_loop_forward_and_gradients(name):
    g = torch.Generator().manual_seed(3)
    bank = HallucinatorBank(4, 3, 3, (12, 12), CONFIGS[name], generator=g)
    with torch.no_grad():  # every parameter away from its init, so a wrong index would show
        for p in bank.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    x = torch.randn(9, 3, 12, 12, generator=g)
    index = torch.tensor([3, 0, 0, 2, 1, 3, 3, 0, 2])
    results = []
    for mode in ("loop", "grouped"):
        bank.grouped_mode = mode
        bank.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = bank(xi, index)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), xi.grad, [p.grad.clone() for p in bank.parameters()]))
    (o1, gx1, gp1), (o2, gx2, gp2) = results
    torch.testing.assert_close(o2, o1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx2, gx1, rtol=1e-5, atol=1e-5)
    for a, b in zip(gp2, gp1):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # sums over many pixels


def test_auto_uses_the_loop_on_cpu_and_a_single_hallucinator_batch_matches():
    bank = HallucinatorBank(3, 3, 3, (8, 8), HallucinatorConfig(init="random"), generator=torch.Generator().manual_seed(0))
    assert bank.grouped_mode == "auto"
    x = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(bank.grouped(x, torch.full((5,), 2)), bank.single(x, 2), rtol=1e-5, atol=1e-5)
