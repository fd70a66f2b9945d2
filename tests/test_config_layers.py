"""One --set syntax and one layering helper for every entry point (haba_core.config_layers)."""

import pytest

from haba_core import ConfigError, DistillConfig
from haba_core.config_layers import check_table, merge_layers, parse_set, parse_value


def test_values_are_toml_literals_else_plain_strings():
    assert [parse_value(v) for v in ("2", "1e-5", "true", '"7"', "[1, 2]", "none", "NULL")] == \
        [2, 1e-5, True, "7", [1, 2], None, None]
    assert parse_value("imagefolder:/data/x.tar.gz") == "imagefolder:/data/x.tar.gz"
    assert parse_value("2024-01-01") == "2024-01-01"  # a name, not a TOML date
    assert parse_value('{"a": 1}') == '{"a": 1}'  # JSON objects stay text (haba-fl's distill-overrides)


def test_dotted_keys_nest_and_snake_case_is_optional():
    assert parse_set(["hallucinator.depth=2", "net-width=8"], snake_case=True) == \
        {"hallucinator": {"depth": 2}, "net_width": 8}
    assert parse_set(["train-limit=100"]) == {"train-limit": 100}
    for bad in ("novalue", "=1", "a..b=1"):
        with pytest.raises(ConfigError, match="--set"):
            parse_set([bad])
    with pytest.raises(ConfigError, match="not a table"):
        parse_set(["a=1", "a.b=2"])


def test_layers_merge_tables_key_by_key_without_touching_inputs():
    base = {"ipc": 3, "hallucinator": {"depth": 2, "init": "random"}}
    top = {"bpc": 1, "hallucinator": {"init": "pca"}}
    merged = merge_layers(base, top, exclusive=[("ipc", "bpc")])
    assert merged == {"ipc": None, "bpc": 1, "hallucinator": {"depth": 2, "init": "pca"}}
    assert base == {"ipc": 3, "hallucinator": {"depth": 2, "init": "random"}}
    assert merge_layers(merged, {"ipc": 4}, exclusive=[("ipc", "bpc")])["bpc"] is None


def test_checked_against_the_dataclass_naming_key_and_source():
    assert check_table({"lr_bases": 1, "hallucinator": {"depth": 3}}, DistillConfig, "--set") == \
        {"lr_bases": 1.0, "hallucinator": {"depth": 3}}
    with pytest.raises(ConfigError, match=r"--set: unknown key 'hallucinator.nope'"):
        check_table({"hallucinator": {"nope": 1}}, DistillConfig, "--set")
    with pytest.raises(ConfigError, match=r"x.toml: iterations must be an integer"):
        check_table({"iterations": "many"}, DistillConfig, "x.toml")


def test_every_entry_point_reads_set_the_same_way():
    from haba_cl.cl_cli import build_parser as cl_parser, config_from_args
    from haba_cl.distill_settings import resolve
    from haba_cl.fl_cli import build_parser as fl_parser, run_config_overrides

    items = ["hallucinator.depth=3", "dm.batch_real=16"]
    assert resolve(None, items, {}).distill.hallucinator.depth == 3
    cl = config_from_args(cl_parser().parse_args([f"--set={i}" for i in items] + ["--distill-width", "8"]))
    assert cl.distill == {"hallucinator": {"depth": 3}, "dm": {"batch_real": 16}, "net_width": 8}
    fl = run_config_overrides(fl_parser().parse_args(["--set", "train-limit=100", "--set", "recipe=paper"]), "haba")
    assert fl["train-limit"] == 100 and fl["recipe"] == "paper"


def test_where_a_learned_eval_lr_applies_is_a_checked_run_setting():
    from haba_cl.distill_settings import resolve

    assert resolve(None, [], {}).eval_config().learned_lr_on == "same-network"
    assert resolve(None, ["eval_learned_lr_on=every-network"], {}).eval_config().learned_lr_on == "every-network"
    with pytest.raises(ConfigError, match="eval_learned_lr_on"):
        resolve(None, ["eval_learned_lr_on=sometimes"], {})
