"""Tests of ZCA whitening (kornia fit, inverse, state round trip)."""

import pytest
import torch

from haba_core.errors import ConfigError, FormatError
from haba_core.zca import ZCA


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(48, 48, generator=g))
    mix = torch.diag(torch.linspace(2.0, 6.0, 48)) @ q.T  # correlated pixels, eigenvalues 4..36
    flat = torch.randn(4000, 48, generator=g) @ mix + 0.5
    return flat.reshape(4000, 3, 4, 4)


def _cov(x):
    flat = x.reshape(x.shape[0], -1).double()
    flat = flat - flat.mean(0)
    return flat.T @ flat / (flat.shape[0] - 1)


def test_whitened_covariance_is_identity(images):
    zca = ZCA(regularization=1e-6).fit(images)
    out = zca.transform(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.allclose(_cov(out), torch.eye(48, dtype=torch.float64), atol=2e-3)
    assert out.reshape(4000, -1).mean(0).abs().max() < 1e-4
    assert torch.allclose(_cov(images), torch.eye(48, dtype=torch.float64), atol=0.5) is False


def test_default_regularisation_nearly_diagonal(images):
    zca = ZCA().fit(images)
    assert zca.regularization == 0.1 and zca.fitted
    cov = _cov(zca.transform(images))
    off = cov - torch.diag(torch.diag(cov))
    assert off.abs().max() < 0.05
    assert ((torch.diag(cov) > 0.8) & (torch.diag(cov) <= 1.0 + 1e-3)).all()


def test_inverse_round_trip_and_shapes(images):
    zca = ZCA().fit(images)
    x = images[:5]
    assert torch.allclose(zca.inverse(zca.transform(x)), x, atol=1e-4)
    single = images[:1]
    assert zca.transform(single).shape == (1, 3, 4, 4)


def test_state_dict_round_trip(images):
    zca = ZCA().fit(images)
    state = zca.state_dict()
    assert set(state) == {"mean", "transform", "inverse"}
    assert state["mean"].shape == (48,) and state["transform"].shape == (48, 48)
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in state.values())
    again = ZCA.from_state_dict(state)
    x = images[:7]
    assert torch.equal(again.transform(x), zca.transform(x))
    assert torch.equal(again.inverse(x), zca.inverse(x))
    with pytest.raises(FormatError):
        ZCA.from_state_dict({"mean": state["mean"]})


def test_fit_is_deterministic_and_to_device(images):
    a = ZCA().fit(images).state_dict()
    b = ZCA().fit(images.clone()).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    zca = ZCA().fit(images).to("cpu")
    assert zca.transform(images[:2]).device.type == "cpu"


def test_unfitted_and_mismatched_errors(images):
    with pytest.raises(ConfigError):
        ZCA().transform(images)
    assert not ZCA().fitted
    zca = ZCA().fit(images)
    with pytest.raises(ConfigError):
        zca.transform(torch.randn(2, 3, 8, 8))


def test_transform_is_differentiable(images):
    zca = ZCA().fit(images)
    x = images[:3].clone().requires_grad_(True)
    zca.transform(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
