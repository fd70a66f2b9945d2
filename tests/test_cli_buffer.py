"""haba-buffer on digits (2 experts × 2 epochs), resuming, and haba-distill --method mtt using it."""

from __future__ import annotations

import json

import pytest

from cli_helpers import QUIET, assert_clean_error, run_main
from haba_cl import distill_cli
from haba_cl.buffer_cli import main
from haba_core import FactorizedDataset

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
