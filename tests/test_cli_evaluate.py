"""haba-evaluate on a tiny distilled digits result: table, eval.json, --json, and its error paths."""

from __future__ import annotations

import json
import shutil

import pytest

from cli_helpers import QUIET, assert_clean_error, run_main
from haba_cl import distill_cli
from haba_cl.evaluate_cli import main, parse_archs

FAST = ["--threads", "1", "--runs", "1", "--epochs", "1"]


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "result"
    ran = run_main(distill_cli.main, [*QUIET, "--no-compare", "--out", str(out)])
    assert ran.code == 0, ran.err
    return out


def test_two_architectures_table_and_eval_json(result_dir):
    ran = run_main(main, [str(result_dir), *FAST, "--arch", "ConvNet,alexnet", "--quiet"])
    assert ran.code == 0, ran.err
    assert "ConvNet" in ran.out and "AlexNet" in ran.out and "±" in ran.out
    summary = json.loads((result_dir / "eval.json").read_text())
    assert set(summary["results"]) == {"ConvNet", "AlexNet"}
    assert summary["dataset"] == "digits"
    for r in summary["results"].values():
        assert r["runs"] == 1 and r["epochs"] == 1 and 0 <= r["mean"] <= 100
    # the ConvNet is evaluated at the width it was distilled with (8 in the tiny settings)
    assert summary["config"]["net_width"] == 8
    assert summary["config"]["dsa"] is True  # as recorded in metrics.json
    assert summary["val_per_class"] == 0 and "validation" not in ran.out  # distilled on the whole training set


def test_a_result_distilled_without_a_validation_split_is_scored_on_it_too(tmp_path):
    out = tmp_path / "val"
    assert run_main(distill_cli.main, [*QUIET, "--no-compare", "--val-per-class", "15", "--out", str(out)]).code == 0
    ran = run_main(main, [str(out), *FAST, "--arch", "ConvNet,alexnet", "--quiet"])
    assert ran.code == 0, ran.err
    assert "validation accuracy (%)" in ran.out
    summary = json.loads((out / "eval.json").read_text())
    assert summary["val_per_class"] == 15
    for r in summary["results"].values():
        assert 0 <= r["val_mean"] <= 100 and len(r["extra"]["also"]["val"]) == r["runs"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    for bad in ("15", -1, 2.5, True):  # a tampered record: one line, exit 2, nothing evaluated
        metrics["config"]["run"]["val_per_class"] = bad
        (out / "metrics.json").write_text(json.dumps(metrics))
        assert_clean_error(run_main(main, [str(out), *FAST, "--quiet"]), "val_per_class")


def test_json_output_only_json(result_dir):
    ran = run_main(main, [str(result_dir), *FAST, "--json"])
    assert ran.code == 0, ran.err
    printed = json.loads(ran.out)
    assert printed == json.loads((result_dir / "eval.json").read_text())
    assert "ConvNet" in ran.err  # the table moves to stderr


def test_parse_archs_canonicalises():
    assert parse_archs("convnet, ResNet18,vgg11") == ["ConvNet", "ResNet18", "VGG11"]


def test_unknown_architecture(result_dir):
    assert_clean_error(run_main(main, [str(result_dir), *FAST, "--arch", "ConvNet,LeNet9"]),
                       "unknown architecture", "LeNet9")


def test_missing_directory(tmp_path):
    assert_clean_error(run_main(main, [str(tmp_path / "nope"), *FAST]), "not a factorized dataset")


def test_truncated_tensor_file(result_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(result_dir, broken)
    data = (broken / "factorized.safetensors").read_bytes()
    (broken / "factorized.safetensors").write_bytes(data[: len(data) // 2])
    assert_clean_error(run_main(main, [str(broken), *FAST]), "truncated")
    old = (result_dir / "eval.json").read_bytes() if (result_dir / "eval.json").exists() else None
    assert (broken / "eval.json").read_bytes() == old if old is not None else not (broken / "eval.json").exists()


def test_garbled_meta(result_dir, tmp_path):
    broken = tmp_path / "garbled"
    shutil.copytree(result_dir, broken)
    (broken / "meta.json").write_text("{not json")
    assert_clean_error(run_main(main, [str(broken), *FAST]), "meta.json")


def test_dataset_override_must_match(result_dir, tmp_path):
    ran = run_main(main, [str(result_dir), *FAST, "--dataset", "mnist", "--data-root", str(tmp_path)])
    assert_clean_error(ran, "mnist", "not found")
