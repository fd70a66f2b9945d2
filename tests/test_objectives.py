import pytest
import torch

from haba_core import DSA, ExpertConfig, train_experts
from haba_core.distillation import network_factory
from haba_core.objectives import (DCObjective, DMObjective, DSAObjective, MTTConfig, MTTObjective,
                                  ObjectiveContext, RealPool)
from haba_core.objectives.dc import DCConfig
from haba_core.objectives.dm import DMConfig

from core_fixtures import separable_dataset, tiny_config


def _ctx(dsa=False):
    data = separable_dataset()
    x = (data.images - 0.5) / 0.3
    cfg = tiny_config()
    make = network_factory(cfg, data.image_shape, data.num_classes, torch.device("cpu"))
    return ObjectiveContext(RealPool(x, data.labels, 4), 4, data.image_shape, make,
                            DSA() if dsa else None, torch.device("cpu")), x, data.labels


def _lowers_own_loss(objective, syn, labels, steps, lr):
    syn = syn.clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=lr, momentum=0.5)
    state = torch.Generator().manual_seed(123).get_state()

    def measure():
        g = torch.Generator()
        g.set_state(state)
        return objective.loss(syn, labels, g)

    before = float(measure().detach())
    for i in range(steps):
        g = torch.Generator().manual_seed(i)
        loss = objective.loss(syn, labels, g)
        opt.zero_grad()
        loss.backward()
        assert syn.grad is not None and syn.grad.abs().sum() > 0
        opt.step()
    return before, float(measure().detach())


def _noise_syn(n_per_class=2):
    g = torch.Generator().manual_seed(5)
    syn = torch.randn((4 * n_per_class, 1, 8, 8), generator=g)
    return syn, torch.arange(4).repeat_interleave(n_per_class)


def test_dm_lowers_its_loss():
    ctx, _, _ = _ctx()
    syn, labels = _noise_syn()
    before, after = _lowers_own_loss(DMObjective(ctx, DMConfig(batch_real=16)), syn, labels, 30, 1.0)
    assert after < before


@pytest.mark.parametrize("cls,dsa", [(DCObjective, False), (DSAObjective, True)])
def test_gradient_matching_lowers_its_loss(cls, dsa):
    ctx, _, _ = _ctx(dsa)
    syn, labels = _noise_syn()

    def fresh():
        return cls(ctx, DCConfig(batch_real=16, outer_loop=1000, inner_loop=1))

    objective = fresh()
    before, after = _lowers_own_loss(objective, syn, labels, 25, 0.1)
    assert after < before


def test_dc_inner_loop_trains_its_network():
    ctx, x, y = _ctx()
    obj = DCObjective(ctx, DCConfig(batch_real=8, outer_loop=5, inner_loop=3))
    syn, labels = _noise_syn()
    g = torch.Generator().manual_seed(0)
    obj.loss(syn, labels, g)
    w0 = [p.detach().clone() for p in obj.net.parameters()]
    obj.after_update(lambda: (syn, labels), g)
    assert any(not torch.equal(a, b) for a, b in zip(w0, obj.net.parameters()))


@pytest.fixture(scope="module")
def buffer(tmp_path_factory):
    data = separable_dataset()
    x = (data.images - 0.5) / 0.3
    cfg = tiny_config()
    make = network_factory(cfg, data.image_shape, 4, torch.device("cpu"))
    out = tmp_path_factory.mktemp("buffer")
    train_experts(x, data.labels, make, out, ExpertConfig(num_experts=2, epochs=3, batch_size=32, dsa=False),
                  {"dataset": "separable"})
    return out


def test_experts_are_stored_and_resumable(buffer):
    shards = sorted(buffer.glob("expert_*.safetensors"))
    assert len(shards) == 2
    mtime = shards[0].stat().st_mtime_ns
    data = separable_dataset()
    make = network_factory(tiny_config(), data.image_shape, 4, torch.device("cpu"))
    train_experts((data.images - 0.5) / 0.3, data.labels, make, buffer,
                  ExpertConfig(num_experts=2, epochs=3, batch_size=32, dsa=False), {"dataset": "separable"})
    assert shards[0].stat().st_mtime_ns == mtime  # kept, not retrained


def test_mtt_lowers_its_loss_and_learns_lr(buffer):
    ctx, _, _ = _ctx()
    obj = MTTObjective(ctx, MTTConfig(buffer=str(buffer), syn_steps=3, expert_epochs=1, max_start_epoch=2,
                                      lr_init=0.01))
    syn, labels = _noise_syn()
    before, after = _lowers_own_loss(obj, syn, labels, 20, 10.0)
    assert after < before
    syn = syn.clone().requires_grad_(True)
    obj.loss(syn, labels, torch.Generator().manual_seed(0)).backward()
    assert obj.syn_lr.grad is not None and obj.syn_lr.grad != 0
    assert obj.learned_lr() > 0


def test_mtt_rejects_mismatched_buffer(buffer):
    from haba_core import FormatError
    data = separable_dataset()
    cfg = tiny_config(net_width=16)
    make = network_factory(cfg, data.image_shape, 4, torch.device("cpu"))
    ctx = ObjectiveContext(RealPool(data.images, data.labels, 4), 4, data.image_shape, make, None,
                           torch.device("cpu"))
    with pytest.raises(FormatError, match="another network"):
        MTTObjective(ctx, MTTConfig(buffer=str(buffer), expert_epochs=1))
