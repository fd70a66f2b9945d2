"""Tests of differentiable siamese augmentation (DSA)."""

import pytest
import torch

from haba_core.augment import DSA, DSAConfig, DSAParams
from haba_core.errors import UnknownNameError

ALL_OPS = ("brightness", "saturation", "contrast", "crop", "cutout", "flip", "scale", "rotate")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_strategy_parsing():
    assert DSA().ops == ALL_OPS
    assert DSA(DSAConfig(strategy="crop_color")).ops == ("crop", "brightness", "saturation", "contrast")
    assert DSA(DSAConfig(strategy="none")).ops == ()
    with pytest.raises(UnknownNameError):
        DSA(DSAConfig(strategy="color_blur"))


def test_siamese_same_params_same_result():
    dsa = DSA()
    x = torch.rand(4, 3, 16, 16)
    params = dsa.sample(4, gen())
    assert params.batch_size == 4
    assert torch.equal(dsa.apply(x, params), dsa.apply(x.clone(), params))


def test_shared_params_broadcast_to_batches_of_any_size():
    dsa = DSA()
    img = torch.rand(1, 3, 16, 16)
    params = dsa.sample(1, gen(3))
    big = dsa.apply(img.expand(6, -1, -1, -1).clone(), params)
    small = dsa.apply(img.expand(2, -1, -1, -1).clone(), params)
    for out in (big, small):
        assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)
    assert torch.allclose(big[0], small[0], atol=1e-6)


def test_per_sample_params_need_matching_batch():
    dsa = DSA()
    with pytest.raises(ValueError):
        dsa.apply(torch.rand(3, 3, 8, 8), dsa.sample(4, gen()))


@pytest.mark.parametrize("channels,size", [(3, 32), (1, 8), (1, 28)])
def test_full_strategy_gradient_shape_dtype(channels, size):
    x = torch.rand(3, channels, size, size, requires_grad=True)
    out = DSA()(x, gen(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    out.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_seeded_generator_determinism():
    x = torch.rand(4, 3, 16, 16)
    dsa = DSA()
    assert torch.equal(dsa(x, gen(5)), dsa(x, gen(5)))
    assert not torch.equal(dsa(x, gen(5)), dsa(x, gen(6)))
    a, b = dsa.sample(4, gen(9)), dsa.sample(4, gen(9))
    assert all(torch.equal(a.values[k], b.values[k]) for k in a.values)


def _one(op, u, x):
    dsa = DSA(DSAConfig(strategy=op if op in ALL_OPS[3:] else "color"))
    return dsa.apply(x, DSAParams(x.shape[0], (op,), {op: u}))


@pytest.mark.parametrize("op", ALL_OPS)
def test_each_op_changes_image_and_is_deterministic(op):
    x = torch.rand(2, 3, 16, 16)
    dsa = DSA(DSAConfig(strategy=op))
    params = dsa.sample(2, gen(11))
    if op == "flip":
        params.values["flip"] = torch.zeros(2)  # force the flip
    out = dsa.apply(x, params)
    assert out.shape == x.shape
    assert not torch.allclose(out, x)
    again = dsa.sample(2, gen(11))
    if op == "flip":
        again.values["flip"] = torch.zeros(2)
    assert all(torch.equal(again.values[k], params.values[k]) for k in params.values)
    assert torch.equal(out, dsa.apply(x, again))


def test_op_semantics():
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(_one("flip", torch.zeros(2), x), x.flip(3))
    assert torch.equal(_one("flip", torch.ones(2) * 0.9, x), x)
    assert torch.allclose(_one("brightness", torch.ones(2), x), x + 0.5)
    out = _one("cutout", torch.full((2, 2), 0.5), x + 1.0)
    assert (out == 0).all(dim=1).sum() == 2 * 8 * 8  # an 8×8 hole (0.5 × 16) per image
    crop = _one("crop", torch.zeros(2, 2), x)  # shift by -2 rows and -2 columns, zero-filled
    assert torch.equal(crop[:, :, 2:, 2:], x[:, :, :-2, :-2]) and (crop[:, :, :2] == 0).all()
    mid = _one("crop", torch.full((2, 2), 0.5), x)  # zero shift
    assert torch.equal(mid, x)
    rot0 = _one("rotate", torch.full((2,), 0.5), x)  # zero angle
    assert torch.allclose(rot0, x, atol=1e-5)
    gray = torch.rand(2, 1, 8, 8)
    assert torch.allclose(_one("saturation", torch.rand(2), gray), gray)


def test_single_op_mode_samples_one_group():
    dsa = DSA(DSAConfig(single_op=True))
    seen = set()
    for seed in range(12):
        params = dsa.sample(1, gen(seed))
        assert params.ops in {g for g in dsa.groups}
        seen.add(params.ops)
    assert len(seen) > 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_agree():
    x = torch.rand(3, 3, 16, 16)
    dsa = DSA()
    cpu = dsa(x, gen(2))
    cuda = dsa(x.cuda(), gen(2))
    assert cuda.device.type == "cuda"
    assert torch.allclose(cpu, cuda.cpu(), atol=1e-4)


def test_shared_crop_equals_the_per_sample_gather_path():
    """A shared shift is applied by pad-and-slice (deterministic backward on CUDA); same values as gather."""
    from haba_core.augment.ops import crop

    x = torch.rand(4, 3, 9, 7)
    cfg = DSA().config
    for u in torch.rand(30, 1, 2):
        shared = crop(x, u, cfg)
        per_sample = crop(x, u.expand(4, 2), cfg)  # n == N takes the gather path
        assert torch.equal(shared, per_sample)


def test_matrix_warp_equals_grid_sample_with_its_gradient():
    from torch.nn import functional as F

    from haba_core.augment.ops import warp_by_matrix

    x = torch.rand(2, 3, 10, 12)
    for angle, sx, sy in ((0.2, 1.0, 1.0), (-0.25, 1.15, 0.85), (0.0, 0.83, 1.2)):
        c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
        theta = torch.tensor([[[c * sx, -s, 0.0], [s, c * sy, 0.0]]])
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ref = F.grid_sample(xa, F.affine_grid(theta.expand(2, 2, 3), list(x.shape), align_corners=True),
                            align_corners=True)
        out = warp_by_matrix(xb, theta)
        assert torch.allclose(out, ref, atol=1e-5)
        w = torch.rand_like(ref)
        (ref * w).sum().backward()
        (out * w).sum().backward()
        assert torch.allclose(xb.grad, xa.grad, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dsa_gradients_are_identical_run_to_run_on_cuda():
    from haba_core.runtime import deterministic_cuda

    deterministic_cuda()
    x = torch.rand(64, 3, 32, 32, device="cuda")
    grads = []
    for _ in range(2):
        xs = x.clone().requires_grad_(True)
        loss = sum(DSA()(xs, gen(k), shared=True).square().sum() for k in range(12))
        loss.backward()
        grads.append(xs.grad)
    assert torch.equal(grads[0], grads[1])


def test_matrix_warp_never_synchronises_with_the_host():
    """No boolean indexing (``aten::nonzero``) in the CUDA warp path: each one is a device→host sync."""
    from torch.profiler import ProfilerActivity, profile

    from haba_core.augment.ops import warp_by_matrix

    x = torch.rand(4, 3, 16, 16)
    theta = torch.tensor([[[0.9, -0.2, 0.0], [0.2, 1.1, 0.0]]])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        warp_by_matrix(x, theta)
    assert not [e for e in prof.key_averages() if e.key in ("aten::nonzero", "aten::item", "aten::_local_scalar_dense")]
