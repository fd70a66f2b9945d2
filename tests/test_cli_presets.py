"""Presets and TOML configuration: every preset parses, maps to the documented DistillConfig, layering."""

from __future__ import annotations

import pytest

from cli_helpers import run_main
from haba_cl.distill_cli import main
from haba_cl.distill_settings import RunSettings, resolve
from haba_core.config_layers import parse_set
from haba_cl.presets import PRESET_DIR, list_presets, resolve_config
from haba_core import ConfigError, config_plan

EXPECTED = {"cifar10-ipc1-mtt", "cifar10-ipc10-mtt", "cifar10-ipc50-mtt", "cifar100-ipc1-mtt", "cifar100-ipc10-mtt",
            "cifar100-ipc50-mtt", "svhn-ipc1-mtt", "svhn-ipc10-mtt", "svhn-ipc50-mtt", "mnist-ipc10-mtt",
            "fashion-mnist-ipc10-mtt", "cifar10-ipc1-dm", "cifar10-ipc10-dm", "cifar10-ipc50-dm"}
SHAPES = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100), "svhn": ((3, 32, 32), 10),
          "mnist": ((1, 28, 28), 10), "fashion-mnist": ((1, 28, 28), 10)}


PAPER_PRESETS = [n for n in list_presets() if not n.startswith("ablation-")]
ABLATIONS = sorted({n.removeprefix("ablation-").rsplit("-", 1)[0] for n in list_presets() if n.startswith("ablation-")})


def test_shipped_presets():
    assert EXPECTED <= set(list_presets())


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_every_preset_parses_and_plans(name):
    run = resolve(name, None, {})
    cfg, s = run.distill, run.settings
    assert run.config_file == str(PRESET_DIR / f"{name}.toml")
    dataset, ipc, method = name.rsplit("-", 2)
    assert s.dataset == dataset and cfg.objective == method and s.description
    assert cfg.parameterization == "haba" and cfg.hallucinators == 5 and cfg.budget_rule == "paper"
    assert run.recipe == "paper"  # presets pin the paper's recipe below them, not the toolkit's default
    assert cfg.hallucinator_optimizer == "sgd" and cfg.hallucinator.affine_stride == 1
    assert (cfg.lambda_dd, cfg.lambda_cos, cfg.lambda_con, cfg.lambda_task) == (1.0, 0.1, 0.1, 1.0)
    assert s.eval_epochs == 1000 and s.eval_dsa
    shape, classes = SHAPES[dataset]
    n = int(ipc[3:])
    plan = config_plan(cfg, shape, classes)
    assert plan.num_hallucinators == 5 and plan.bpc == max(1, n - 1)  # the paper's BPC = IPC - 1


def test_cifar10_ipc10_mtt_maps_to_documented_config():
    run = resolve("cifar10-ipc10-mtt", None, {})
    cfg = run.distill
    assert (cfg.ipc, cfg.bpc, cfg.zca, cfg.iterations, cfg.lr_bases) == (10, None, True, 5000, 1000.0)
    assert (cfg.network, cfg.net_width, cfg.net_depth, cfg.net_norm) == ("ConvNet", 128, 3, "instancenorm")
    m = cfg.mtt
    assert (m.syn_steps, m.expert_epochs, m.max_start_epoch) == (30, 2, 20)
    assert (m.lr_init, m.lr_lr, m.batch_syn) == (0.01, 1e-5, None)
    assert (run.settings.eval_runs, run.settings.compare) == (5, False)
    ev = run.eval_config()
    assert (ev.epochs, ev.dsa, ev.net_width, ev.lr) == (1000, True, 128, None)


def test_ipc1_and_ipc50_presets():
    one = resolve("cifar10-ipc1-mtt", None, {}).distill
    assert (one.ipc, one.bpc, one.mtt.syn_steps, one.mtt.max_start_epoch, one.mtt.lr_lr) == (None, 1, 50, 2, 1e-7)
    fifty = resolve("cifar10-ipc50-mtt", None, {}).distill
    assert (fifty.ipc, fifty.mtt.max_start_epoch, fifty.lr_bases, fifty.mtt.batch_syn) == (50, 40, 100.0, 100)
    c100 = resolve("cifar100-ipc10-mtt", None, {}).distill
    assert (c100.mtt.syn_steps, c100.mtt.max_start_epoch, c100.lr_bases, c100.zca) == (20, 20, 1000.0, True)
    assert resolve("mnist-ipc10-mtt", None, {}).distill.zca is False
    dm = resolve("cifar10-ipc10-dm", None, {}).distill
    assert (dm.objective, dm.lr_bases, dm.iterations, dm.dm.batch_real) == ("dm", 1.0, 20000, 256)


def test_flags_and_set_override_the_file():
    run = resolve("cifar10-ipc1-mtt", ["mtt.syn_steps=2", "hallucinator.depth=2", "eval_runs=1"],
                  {"ipc": 3, "mtt": {"buffer": "buf"}, "eval_epochs": 7})
    cfg = run.distill
    assert (cfg.ipc, cfg.bpc) == (3, None)  # --ipc replaces the preset's bpc
    assert (cfg.mtt.syn_steps, cfg.mtt.expert_epochs, cfg.mtt.buffer) == (2, 2, "buf")
    assert cfg.hallucinator.depth == 2 and cfg.hallucinator.activation == "relu"
    assert (run.settings.eval_runs, run.settings.eval_epochs) == (1, 7)
    assert resolve("cifar10-ipc10-mtt", None, {"bpc": 4}).distill.ipc is None


def test_custom_toml_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('dataset = "digits"\nobjective = "dc"\nparameterization = "idc-haba"\nipc = 4\n'
                    'eval_epochs = 20\n[hallucinator]\ndepth = 2\n[dc]\nouter_loop = 2\n')
    run = resolve(str(path), None, {})
    assert (run.distill.objective, run.distill.parameterization, run.distill.ipc) == ("dc", "idc-haba", 4)
    assert run.distill.hallucinator.depth == 2 and run.distill.dc.outer_loop == 2
    assert run.settings.eval_epochs == 20
    # the digits quick-start defaults fill what the file leaves out (digits start from the paper recipe)
    assert run.distill.net_width == 32 and run.settings.threads == 1 and run.distill.lr_hallucinators == 0.01
    assert run.recipe == "paper"


def test_defaults_depend_on_dataset():
    quick, std = resolve(None, None, {}), resolve(None, None, {"dataset": "cifar10"})
    assert quick.settings.dataset == "digits" and quick.distill.net_width == 32
    assert std.distill.net_width == 128 and std.distill.iterations == 1000
    assert std.settings.eval_runs == RunSettings().eval_runs


def test_config_lookup_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file and no preset"):
        resolve_config("cifar10-ipc7-mtt")
    assert resolve_config("cifar10-ipc10-mtt.toml") == PRESET_DIR / "cifar10-ipc10-mtt.toml"
    with pytest.raises(ConfigError, match="--set expects KEY=VALUE"):
        parse_set(["novalue"], snake_case=True)
    assert parse_set(["a.b=1e-5", "c=true", "d=text", "lr_bases=none"], snake_case=True) == \
        {"a": {"b": 1e-5}, "c": True, "d": "text", "lr_bases": None}


def test_list_presets_command():
    ran = run_main(main, ["--list-presets"])
    assert ran.code == 0
    assert "cifar10-ipc10-mtt" in ran.out and "needs --buffer" in ran.out


def test_recipe_layer_sits_below_config_set_and_flags(tmp_path):
    run = resolve(None, None, {}, recipe="modest")
    cfg = run.distill
    assert cfg.parameterization == "idc-haba" and cfg.hallucinator.affine_stride == 2
    assert (cfg.lambda_cos, cfg.lambda_con, cfg.lambda_task) == (0.0, 0.0, 0.0)
    run = resolve(None, ["lambda_cos=0.1"], {"parameterization": "haba"}, recipe="modest")
    assert run.distill.lambda_cos == 0.1 and run.distill.parameterization == "haba"
    assert run.distill.hallucinator.affine_stride == 2  # nested recipe keys survive other layers
    paper = resolve(None, None, {}, recipe="paper").distill
    assert paper.parameterization == "haba" and paper.lambda_cos == 0.1


def test_unknown_recipe_is_a_usage_error(capsys):
    ran = run_main(main, ["--recipe", "turbo"])
    assert ran.code == 2 and "invalid choice" in ran.err


def test_default_recipe_is_modest_and_a_file_may_name_another(tmp_path):
    from haba_cl.distill_settings import DEFAULT_RECIPE
    from haba_core import recipe_config

    assert DEFAULT_RECIPE == "modest"
    digits = resolve(None, None, {})  # 8×8 images: too small for modest's down-sampled bases
    assert digits.recipe == "paper" and digits.distill.parameterization == "haba"
    assert digits.distill.hallucinator.init == "identity" and digits.distill.lr_hallucinators == 0.01
    assert resolve(None, None, {}, recipe="modest").distill.parameterization == "idc-haba"
    run = resolve(None, None, {"dataset": "cifar10", "ipc": 2})
    modest = recipe_config("modest", ipc=2)
    assert run.recipe == "modest" and run.as_dict()["recipe"] == "modest"
    assert (run.distill.parameterization, run.distill.hallucinator_optimizer, run.distill.lr_hallucinators,
            run.distill.hallucinator, run.distill.lambda_cos) == \
        (modest.parameterization, "adam", 1e-4, modest.hallucinator, 0.0)
    path = tmp_path / "paper.toml"
    path.write_text('recipe = "paper"\ndataset = "cifar10"\nipc = 2\n')
    paper = resolve(str(path), None, {})
    assert paper.recipe == "paper" and paper.distill.parameterization == "haba"
    assert paper.distill.hallucinator_optimizer == "sgd" and paper.distill.lambda_cos == 0.1
    over = resolve(str(path), None, {}, recipe="modest")  # --recipe beats the file's key
    assert over.recipe == "modest" and over.distill.parameterization == "idc-haba"


@pytest.mark.parametrize("value", ['"turbo"', "3"])
def test_bad_recipe_in_a_file_names_the_file(tmp_path, value):
    path = tmp_path / "bad.toml"
    path.write_text(f"recipe = {value}\n")
    with pytest.raises(ConfigError, match=r"bad.toml: recipe must be one of fixed-bank, modest, paper"):
        resolve(str(path), None, {})


@pytest.mark.parametrize("name", [n for n in PAPER_PRESETS if n.startswith("cifar100-")])
def test_cifar100_presets_batch_300_bases_above_1000(name):
    cfg = resolve(name, None, {}).distill
    bases = 100 * (cfg.bpc or cfg.ipc - 1)  # paper rule: BPC = IPC - 1
    assert cfg.bases_per_step == (300 if bases > 1000 else None)  # paper §4.1


def test_ablation_presets_cover_the_papers_tables_at_both_scales():
    assert {"base", "tab4-no-cos", "tab4-no-con", "tab4-no-task", "tab5-per-class", "tab9-depth0", "tab9-depth2",
            "tab9-depth3", "tab10-ch8", "tab10-ch16", "fig8-1ch", "fig8-1ch-same-memory", "fig8-h2", "fig8-h10",
            "tab3-plain", "tab3-idc", "tab3-idc-haba", "tab11-shared-codec"} <= set(ABLATIONS)
    for ablation in ABLATIONS:
        cpu, full = (resolve(f"ablation-{ablation}-{s}", None, {}) for s in ("cpu", "full"))
        assert cpu.recipe == full.recipe == "paper"
        assert full.settings.dataset == "cifar10" and full.distill.objective == "mtt" and full.distill.zca
        assert full.distill.net_width == 128 and full.distill.iterations == 5000 and full.settings.eval_epochs == 1000
        assert cpu.distill.objective == "dm" and cpu.distill.iterations <= 200 and cpu.distill.net_width <= 32
        for run in (cpu, full):  # only the scale differs: the ablated knob is the same at both scales
            d = run.distill
            assert d.hallucinator.init == "random" and d.hallucinator.layout == "pyramid"
            assert d.resolved_lr_hallucinators == d.resolved_lr_bases  # η_H = η_B
        knobs = ("parameterization", "per_class_hallucinators", "basis_channels", "hallucinators", "lambda_cos",
                 "lambda_con", "lambda_task")
        assert [getattr(cpu.distill, k) for k in knobs] == [getattr(full.distill, k) for k in knobs], ablation
        hall = ("depth", "channels", "shared_codec")
        assert [getattr(cpu.distill.hallucinator, k) for k in hall] == \
            [getattr(full.distill.hallucinator, k) for k in hall], ablation
    full = {a: resolve(f"ablation-{a}-full", None, {}).distill for a in ABLATIONS}
    assert full["tab4-no-cos"].lambda_cos == 0 and full["tab4-no-con"].lambda_con == 0
    assert full["tab4-no-task"].lambda_task == 0 and full["tab5-per-class"].per_class_hallucinators
    assert [full[f"tab9-depth{d}"].hallucinator.depth for d in (0, 2, 3)] == [0, 2, 3]
    assert full["tab11-shared-codec"].hallucinator.shared_codec and not full["base"].hallucinator.shared_codec
    assert (full["fig8-1ch"].bpc, full["fig8-1ch-same-memory"].bpc, full["fig8-1ch"].basis_channels) == (10, 30, 1)
    assert [full[f"tab3-{p}"].parameterization for p in ("plain", "idc", "idc-haba")] == ["plain", "idc", "idc-haba"]
