"""haba-distill's checks before work starts: the budget fits, and a note when hallucinators eat the budget."""

from __future__ import annotations

import pytest
import torch

from haba_cl.preflight import BANK_SHARE_NOTE, bank_share_note, check_budget, unused_budget_note
from haba_core import FILL_MIN_UNUSED, BudgetError, config_plan, plan_budget
from haba_core.data import ImageDataset
from haba_core.distillation.recipes import recipe_config


def _plan(ipc: int, name: str = "modest", **over):
    return config_plan(recipe_config(name, ipc=ipc, **over), (3, 32, 32), 10)


def test_bank_share_note_at_small_budgets_only():
    small, large = _plan(2, budget_rule="exact"), _plan(11, budget_rule="exact")
    assert (small.bpc, large.bpc) == (6, 42)  # of 8 and 44 down-sampled bases per class: 25 % and 4.5 %
    assert 2 / 8 >= BANK_SHARE_NOTE > 2 / 44
    note = bank_share_note(small)
    assert note is not None and "2 of the 8 bases" in note and "25%" in note and "--param idc" in note
    assert bank_share_note(large) is None
    assert _plan(2).bpc == 7 and bank_share_note(_plan(2)) is None  # modest's fill rule: 1 of 8 (12.5 %)
    assert bank_share_note(_plan(2, parameterization="idc")) is None  # nothing to trade
    explicit = plan_budget(image_shape=(3, 32, 32), num_classes=10, parameterization="idc-haba", bpc=1)
    assert bank_share_note(explicit) is None  # no budget given: no share to speak of


def test_unused_budget_note_points_to_the_fill_rule():
    exact, fill = _plan(2, budget_rule="exact"), _plan(2, budget_rule="fill")
    assert 1 - exact.storage.data_parameters / exact.budget_parameters >= FILL_MIN_UNUSED  # 11 % unused
    note = unused_budget_note(exact, fill)
    assert note is not None and "store 88.9% of the budget" in note and "fill stores 98.6% with 4 and 7" in note
    assert unused_budget_note(fill, fill) is None  # nothing more to store
    assert unused_budget_note(_plan(11, budget_rule="exact"), _plan(11)) is None  # 2 % unused: no note
    idc = _plan(2, parameterization="idc")
    assert unused_budget_note(idc, idc) is None


def test_check_budget_refuses_more_images_than_a_class_holds():
    train = ImageDataset("t", torch.zeros(6, 1, 4, 4), torch.tensor([0, 0, 0, 1, 1, 1]), ["a", "b"], (0.5,), (0.25,),
                         "train")
    cfg = recipe_config("modest", ipc=4)
    with pytest.raises(BudgetError, match="largest class"):
        check_budget(cfg, 1, (1, 2, 2), train)
    with pytest.raises(BudgetError, match="GiB"):
        check_budget(recipe_config("modest", ipc=2), 1, (1, 2, 2), train, available=10)


def test_haba_distill_prints_the_note(tmp_path):
    from cli_helpers import TINY, run_main
    from haba_cl import distill_cli

    ran = run_main(distill_cli.main, [*TINY, "--recipe", "modest", "--ipc", "2", "--budget-rule", "exact",
                                      "--eval-runs", "0", "--no-compare", "--out", str(tmp_path / "o")])
    assert ran.code == 0, ran.err
    assert "note: the hallucinators take the bytes of 2 of the 8 bases per class" in ran.err
    ran = run_main(distill_cli.main, [*TINY, "--param", "idc", "--ipc", "2", "--eval-runs", "0", "--no-compare",
                                      "--out", str(tmp_path / "i")])
    assert ran.code == 0, ran.err
    assert "note: the hallucinators" not in ran.err


def test_haba_distill_budget_rule_fill(tmp_path):
    from cli_helpers import TINY, run_main
    from haba_cl import distill_cli
    from haba_core import FactorizedDataset

    # digits (1x8x8) at IPC 1 under modest: exact keeps 5 hallucinators and 2 bases per class (580 of 640 numbers,
    # 9 % unused); fill keeps 3 and 3 bases per class (636). At IPC 2 exact leaves 4.7 % unused: fill keeps its plan
    ran = run_main(distill_cli.main, [*TINY, "--recipe", "modest", "--ipc", "1", "--budget-rule", "fill",
                                      "--eval-runs", "0", "--no-compare", "--out", str(tmp_path / "f")])
    assert ran.code == 0, ran.err
    assert "3 of 5 hallucinators leave the least of the budget unused (fill rule): 3 bases per class" in ran.err
    syn = FactorizedDataset.load(tmp_path / "f").synthetic
    assert (syn.num_bases, syn.num_hallucinators) == (30, 3)
    ran = run_main(distill_cli.main, [*TINY, "--recipe", "modest", "--ipc", "2", "--budget-rule", "fill",
                                      "--eval-runs", "0", "--no-compare", "--out", str(tmp_path / "g")])
    assert ran.code == 0 and "fill rule" not in ran.err
    syn = FactorizedDataset.load(tmp_path / "g").synthetic
    assert (syn.num_bases, syn.num_hallucinators) == (60, 5)
    ran = run_main(distill_cli.main, [*TINY, "--set", "budget_rule=most", "--out", str(tmp_path / "x")])
    assert ran.code == 2 and "most" in ran.err and "Traceback" not in ran.err
