"""haba-buffer on digits (2 experts × 2 epochs), resuming, and haba-distill --method mtt using it."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from cli_helpers import QUIET, assert_clean_error, run_main
from haba_cl import distill_cli
from haba_cl.buffer_cli import main
from haba_core import ConfigError, FactorizedDataset, FormatError
from haba_core.data import MAX_VAL_PER_CLASS, is_val_per_class
from haba_core.objectives import buffer_val_per_class, check_buffer_split, read_buffer_info

BUFFER = ["--threads", "1", "--dataset", "digits", "--experts", "2", "--epochs", "2", "--net-width", "8", "--quiet"]
MTT = [*QUIET, "--method", "mtt", "--iterations", "2", "--set", "mtt.expert_epochs=1", "--set", "mtt.syn_steps=2"]


@pytest.fixture(scope="module")
def buffer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("buffer") / "buf"
    ran = run_main(main, [*BUFFER, "--out", str(out)])
    assert ran.code == 0, ran.err
    return out


def test_buffer_files(buffer_dir):
    shards = sorted(p.name for p in buffer_dir.glob("expert_*.safetensors"))
    assert shards == ["expert_0000.safetensors", "expert_0001.safetensors"]
    info = json.loads((buffer_dir / "buffer.json").read_text())
    assert info["dataset"] == "digits" and info["zca"] is False and info["net_width"] == 8
    assert info["config"]["num_experts"] == 2 and info["config"]["epochs"] == 2


def test_rerun_skips_finished_experts_and_extends(buffer_dir):
    before = {p.name: p.stat().st_mtime_ns for p in buffer_dir.glob("expert_*.safetensors")}
    ran = run_main(main, [*BUFFER[:-1], "--out", str(buffer_dir)])  # not quiet: reports what is done
    assert ran.code == 0, ran.err
    assert "2 already done" in ran.err
    after = {p.name: p.stat().st_mtime_ns for p in buffer_dir.glob("expert_*.safetensors")}
    assert before == after


def test_mtt_distillation_with_the_buffer(buffer_dir, tmp_path):
    out = tmp_path / "mtt"
    ran = run_main(distill_cli.main, [*MTT, "--buffer", str(buffer_dir), "--out", str(out), "--json"])
    assert ran.code == 0, ran.err
    metrics = json.loads(ran.out)
    assert metrics["objective"] == "mtt" and metrics["learned_lr"] > 0
    assert metrics["baseline"]["learned_lr"] > 0
    assert FactorizedDataset.load(out).learned_lr == pytest.approx(metrics["learned_lr"])


def test_mtt_buffer_made_with_other_preprocessing(buffer_dir, tmp_path):
    ran = run_main(distill_cli.main, [*MTT, "--zca", "--buffer", str(buffer_dir), "--out", str(tmp_path / "o")])
    assert_clean_error(ran, "zca", "haba-buffer")
    assert not (tmp_path / "o").exists()


def test_mtt_without_buffer(tmp_path):
    assert_clean_error(run_main(distill_cli.main, [*MTT, "--out", str(tmp_path / "o")]), "--buffer")
    assert_clean_error(run_main(distill_cli.main, [*MTT, "--buffer", str(tmp_path), "--out", str(tmp_path / "o")]),
                       "not an expert buffer")


def test_mtt_buffer_of_another_width(buffer_dir, tmp_path):
    argv = [*MTT, "--net-width", "16", "--buffer", str(buffer_dir), "--out", str(tmp_path / "o")]
    ran = run_main(distill_cli.main, argv)
    assert_clean_error(ran, "parameters")


def test_buffer_errors(tmp_path):
    assert_clean_error(run_main(main, ["--dataset", "nosuch", "--out", str(tmp_path / "b")]), "unknown dataset")
    assert_clean_error(run_main(main, [*BUFFER, "--network", "LeNet9", "--out", str(tmp_path / "b")]), "LeNet9")
    assert not (tmp_path / "b").exists()
    ran = run_main(main, ["--dataset", "mnist", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "b")])
    assert_clean_error(ran, "not found")


def test_buffer_settings_mismatch(buffer_dir):
    ran = run_main(main, [*BUFFER, "--zca", "--out", str(buffer_dir)])
    assert_clean_error(ran, "other settings")


def test_buffer_holding_out_the_validation_split(buffer_dir, tmp_path):
    held = tmp_path / "held"
    ran = run_main(main, [*BUFFER, "--val-per-class", "5", "--out", str(held)])
    assert ran.code == 0, ran.err
    assert json.loads((held / "buffer.json").read_text())["val_per_class"] == 5
    assert "val_per_class" not in json.loads((buffer_dir / "buffer.json").read_text())  # old buffers still resume
    # same seeds, fewer images: the experts' trajectories differ from the full-split buffer's after one epoch
    full = load_file(str(buffer_dir / "expert_0000.safetensors"))["trajectory"]
    part = load_file(str(held / "expert_0000.safetensors"))["trajectory"]
    assert torch.equal(full[0], part[0]) and not torch.equal(full[1], part[1])
    ran = run_main(distill_cli.main, [*MTT, "--val-per-class", "5", "--buffer", str(held), "--out", str(tmp_path / "ok")])
    assert ran.code == 0, ran.err


def test_mtt_refuses_experts_that_saw_the_validation_images(buffer_dir, tmp_path):
    ran = run_main(distill_cli.main, [*MTT, "--val-per-class", "5", "--buffer", str(buffer_dir),
                                      "--out", str(tmp_path / "o")])
    assert_clean_error(ran, "trained on the validation images", "--val-per-class 5")
    assert not (tmp_path / "o").exists()
    assert_clean_error(run_main(main, [*BUFFER, "--val-per-class", "-1", "--out", str(tmp_path / "b")]),
                       "--val-per-class")
    assert not (tmp_path / "b").exists()


def test_buffer_split_checks():
    check_buffer_split({"val_per_class": 5}, 0)  # a held-out buffer serves a run without a split
    check_buffer_split({"val_per_class": 5}, 5)
    with pytest.raises(ConfigError, match="another split"):
        check_buffer_split({"val_per_class": 5}, 3)
    assert is_val_per_class(0) and is_val_per_class(MAX_VAL_PER_CLASS) and not is_val_per_class(MAX_VAL_PER_CLASS + 1)
    for bad in ("5", True, -1, 2.0):
        with pytest.raises(FormatError, match="val_per_class"):
            buffer_val_per_class({"val_per_class": bad})


def test_malformed_buffer_json(tmp_path):
    (tmp_path / "buffer.json").write_text("[1, 2]")
    with pytest.raises(FormatError, match="JSON object"):
        read_buffer_info(tmp_path)
    ran = run_main(distill_cli.main, [*MTT, "--buffer", str(tmp_path), "--out", str(tmp_path / "o")])
    assert_clean_error(ran, "JSON object")
