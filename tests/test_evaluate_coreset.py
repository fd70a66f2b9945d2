import pytest
import torch

from haba_core import EvalConfig, FactorizedCollection, evaluate, select_coreset
from haba_core.coreset import herding_select

from core_fixtures import separable_dataset


def test_herding_tracks_the_mean_better_than_random():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(200, 5, generator=g)
    pick = herding_select(feats, 5)
    assert len(set(pick.tolist())) == 5
    err_h = (feats[pick].mean(0) - feats.mean(0)).norm()
    err_r = torch.stack([(feats[torch.randperm(200, generator=g)[:5]].mean(0) - feats.mean(0)).norm()
                         for _ in range(50)]).mean()
    assert err_h < err_r


def test_coresets_have_ipc_per_class_and_evaluate():
    train, test = separable_dataset(), separable_dataset(split="test")
    for method in ("random", "herding"):
        cs = select_coreset(train, 3, method)
        assert torch.bincount(cs.synthetic.labels).tolist() == [3, 3, 3, 3]
        assert cs.storage().ipc_equivalent == 3
    res = evaluate(cs, test, EvalConfig(runs=2, epochs=20, net_width=8, net_depth=2, device="cpu", batch_size=32))
    assert len(res.accuracies) == 2 and 0 <= res.mean <= 100
    assert res.mean > 50  # separable data, real exemplars


def test_collection_concatenates_parts():
    train = separable_dataset()
    a, b = select_coreset(train, 1, seed=0), select_coreset(train, 2, seed=1)
    col = FactorizedCollection([a, b])
    x, y = col.sample_epoch(torch.Generator().manual_seed(0))
    assert x.shape[0] == len(col) == 12 and y.shape == (12,)
    assert col.storage().bases == a.storage().bases + b.storage().bases


def test_also_scores_further_sets_with_the_same_networks():
    train, test = separable_dataset(), separable_dataset(split="test")
    cs = select_coreset(train, 3, "random")
    cfg = EvalConfig(runs=2, epochs=10, net_width=8, net_depth=2, device="cpu", batch_size=32)
    plain = evaluate(cs, test, cfg)
    both = evaluate(cs, test, cfg, also={"again": test, "train": train})
    assert both.accuracies == plain.accuracies  # scoring more sets changes nothing about the training
    assert both.extra["also"]["again"] == plain.accuracies  # the same networks score the same set alike
    assert len(both.extra["also"]["train"]) == 2 and "also" not in plain.extra


def test_also_result_summarises_a_held_out_set_like_the_test_set():
    train, test = separable_dataset(), separable_dataset(split="test")
    cfg = EvalConfig(runs=2, epochs=4, net_width=8, net_depth=2, device="cpu", batch_size=32)
    both = evaluate(select_coreset(train, 3, "random"), test, cfg, also={"again": test})
    again = both.also("again")
    assert again.accuracies == both.accuracies and (again.mean, again.std) == (both.mean, both.std)
    with pytest.raises(KeyError):
        both.also("missing")
