"""adversary_every (issue 19): L_cos and the adversary update only every k-th iteration; k=1 is the paper."""

import pytest
import torch

from haba_core import ConfigError, distill
from haba_core.distillation.checkpoint import check_compatible

from core_fixtures import separable_dataset, tiny_config


def run(every, iterations=5):
    seen = []
    cfg = tiny_config(iterations=iterations, adversary_every=every)
    fd = distill(separable_dataset(), cfg, on_step=lambda it, losses: seen.append(losses))
    return fd, seen


def test_adversary_runs_on_every_kth_iteration_only():
    _, losses = run(3)
    active = [i for i, l in enumerate(losses) if l["adv"] != 0.0]
    assert active == [0, 3]
    assert all(losses[i]["cos"] == 0.0 for i in (1, 2, 4)) and losses[0]["cos"] != 0.0


def test_every_iteration_is_the_default_and_k_changes_the_result():
    default, _ = run(1)
    assert tiny_config().adversary_every == 1
    again, _ = run(1)
    assert torch.equal(default.synthetic.bases, again.synthetic.bases)
    sparse, _ = run(2)
    assert not torch.equal(default.synthetic.bases, sparse.synthetic.bases)


def test_zero_is_refused_and_old_checkpoints_resume_as_every_iteration():
    with pytest.raises(ConfigError, match="adversary_every"):
        tiny_config(adversary_every=0).validate()
    current = tiny_config().to_dict()
    older = {k: v for k, v in current.items() if k != "adversary_every"}
    check_compatible(older, current)
    with pytest.raises(ConfigError, match="adversary_every"):
        check_compatible(older, {**current, "adversary_every": 2})


def test_adversary_width_gives_the_adversary_its_own_width():
    from haba_core.adversary import Adversary

    widths = []
    original = Adversary.__init__

    def spy(self, net, *args, **kwargs):
        widths.append(next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).out_channels)
        original(self, net, *args, **kwargs)

    Adversary.__init__ = spy
    try:
        narrow = distill(separable_dataset(), tiny_config(iterations=3, adversary_width=3))
        same = distill(separable_dataset(), tiny_config(iterations=3, adversary_width=tiny_config().net_width))
        default = distill(separable_dataset(), tiny_config(iterations=3))
    finally:
        Adversary.__init__ = original
    assert widths == [3, tiny_config().net_width, tiny_config().net_width]
    assert torch.equal(same.synthetic.bases, default.synthetic.bases)  # equal width = the paper's F, bit for bit
    assert torch.isfinite(narrow.synthetic.bases).all()
    assert not torch.equal(narrow.synthetic.bases, default.synthetic.bases)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="adversary_width"):
            tiny_config(adversary_width=bad).validate()
    with pytest.raises(ConfigError, match="adversary_width"):
        tiny_config(adversary_width=4, network="MLP").validate()
    current = tiny_config().to_dict()
    check_compatible({k: v for k, v in current.items() if k != "adversary_width"}, current)
