"""``val-per-class``: a federated run carves a fixed validation split from training, keeps it out of every
client's partition and scores the global model on it beside the test set (issue 14's protocol)."""

from __future__ import annotations

import json

import pytest
import torch

from federated.data_cache import load_run_split
from federated.partitioning import partition_indices
from federated.run_config import resolve_run_config
from haba_cl.fl_cli import main
from haba_core import ConfigError


def test_validation_split_is_carved_from_training_and_kept_out_of_it():
    cfg = resolve_run_config({"dataset": "digits", "val-per-class": 12})
    train, val, test = (load_run_split(cfg, s) for s in ("train", "val", "test"))
    whole = load_run_split(resolve_run_config({"dataset": "digits"}), "train")
    assert val.samples_per_class() == [12] * 10 and len(train) + len(val) == len(whole)
    assert torch.equal(test.images, load_run_split(resolve_run_config({"dataset": "digits"}), "test").images)
    parts = partition_indices(train.labels, 3, "dirichlet", 0.5, 0, train.num_classes)
    assert sum(len(p) for p in parts) == len(train)  # the clients share out exactly the non-validation images
    again = load_run_split(cfg, "val")
    assert torch.equal(again.images, val.images)  # fixed draw
    capped = load_run_split({**cfg, "test-limit": 50}, "val")
    assert len(capped) == 50  # the test limit caps the validation split too
    with pytest.raises(ConfigError, match="val-per-class"):
        load_run_split(resolve_run_config({"dataset": "digits"}), "val")
    with pytest.raises(ConfigError, match="val-per-class"):
        from federated.run_config import check_run_config
        check_run_config(resolve_run_config({"dataset": "digits", "val-per-class": -2}))


def test_haba_fl_reports_validation_beside_test(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--dataset", "digits", "--iterations", "2", "--net-width", "16", "--net-depth", "2", "--hallucinators",
            "2", "--server-epochs", "3", "--set", "batch-real=32", "--clients", "2", "--mode", "both", "--rounds", "1",
            "--set", "val-per-class=10", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err[-3000:]
    printed = capsys.readouterr().out
    assert "validation accuracy %" in printed
    doc = json.loads((out / "results.json").read_text())
    for run in doc["runs"].values():
        assert run["config"]["val-per-class"] == 10
        assert 0.0 <= run["rounds"][0]["val_accuracy"] <= 1.0
        assert run["final_val_accuracy"] == run["rounds"][-1]["val_accuracy"]
    assert all(row["val_accuracy"] is not None for row in doc["table"])
