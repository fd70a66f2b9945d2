"""``haba-cl --val-per-class``: a fixed validation split carved from the training images, kept out of the stream,
scored beside the test split under both protocols (issue 14's protocol for the continual studies)."""

from __future__ import annotations

import json

import pytest
import torch

from haba_cl.cl_cli import main
from haba_core import ConfigError, load_dataset, validation_split
from strategies.split_benchmarks import load_split_data

TINY = ["--epochs", "1", "--batch-size", "16", "--net-width", "8", "--net-depth", "2", "--distill-iterations", "2",
        "--distill-net-width", "8", "--hallucinators", "2", "--quiet"]


def test_validation_split_is_seeded_balanced_disjoint_and_complete():
    full = load_dataset("digits")
    train, val = validation_split(full, 7)
    again_train, again_val = validation_split(full, 7)
    assert torch.equal(val.images, again_val.images) and torch.equal(train.labels, again_train.labels)
    assert val.samples_per_class() == [7] * 10 and val.split == "val"
    assert len(train) + len(val) == len(full)
    other_train, other_val = validation_split(full, 7, seed=1)
    assert not torch.equal(other_val.images, val.images)  # the seed decides the draw
    # every image is in exactly one of the two parts
    together = torch.cat([train.images, val.images]).flatten(1)
    assert torch.allclose(together.sum(0), full.images.flatten(1).sum(0), atol=1e-3)
    tiny = full.subset(torch.cat([full.class_indices(c)[:2] for c in range(10)]))
    tr, va = validation_split(tiny, 5)  # a class with too few images keeps one in training
    assert va.samples_per_class() == [1] * 10 and tr.samples_per_class() == [1] * 10
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            validation_split(full, bad)


def test_split_data_keeps_the_validation_images_out_of_the_stream():
    data = load_split_data("split-digits", val_per_class=10, train_per_class=20)
    plain = load_split_data("split-digits")
    assert data.val_y is not None and torch.bincount(data.val_y).tolist() == [10] * 10
    assert torch.bincount(data.train_y).tolist() == [20] * 10 and plain.val_y is None
    train_rows = {tuple(x.flatten().tolist()) for x in data.train_x}
    assert sum(tuple(x.flatten().tolist()) in train_rows for x in data.val_x) <= 2  # duplicate digits only
    assert torch.equal(data.test_x, plain.test_x)  # the test split is untouched
    assert data.describe()["val"] == 100


@pytest.mark.parametrize("protocol", ["avalanche", "fresh-network"])
def test_haba_cl_reports_validation_beside_test(tmp_path, capsys, protocol):
    out = tmp_path / "out"
    argv = ["--benchmark", "split-digits", "--n-experiences", "2", "--strategies", "idc,replay", "--mem-size", "40",
            "--seeds", "0,1", "--protocol", protocol, "--protocol-epochs", "2", "--train-per-class", "8",
            "--test-per-class", "4", "--val-per-class", "6", "--set", "dm.batch_real=4", "--out", str(out),
            "--no-plots", *TINY]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "validation accuracy (%)" in printed and "final avg. accuracy (%)" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["data"]["val"] == 60 and res["config"]["val_per_class"] == 6
    for r in res["runs"]:
        assert 0.0 <= r["val_accuracy"] <= 1.0 and 0.0 <= r["final_accuracy"] <= 1.0
    for name in ("idc", "replay"):
        vals = [100 * r["val_accuracy"] for r in res["runs"] if r["strategy"] == name]
        assert res["summary"][name]["val_accuracy_mean"] == pytest.approx(sum(vals) / 2)
    assert main(argv) == 0  # same seed → same validation scores
    again = json.loads((out / "results.json").read_text())
    assert [r["val_accuracy"] for r in again["runs"]] == [r["val_accuracy"] for r in res["runs"]]


def test_without_validation_the_table_and_results_are_as_before(tmp_path, capsys):
    assert main(["--benchmark", "split-digits", "--n-experiences", "2", "--strategies", "replay", "--mem-size", "40",
                 "--train-per-class", "8", "--test-per-class", "4", "--out", str(tmp_path), "--no-plots",
                 *TINY]) == 0
    assert "validation accuracy" not in capsys.readouterr().out
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["data"]["val"] == 0 and "val_accuracy" not in res["runs"][0]


def test_bad_validation_size_is_one_line_exit_2(capsys):
    assert main(["--benchmark", "split-digits", "--val-per-class", "0", *TINY]) == 2
    err = capsys.readouterr().err
    assert "--val-per-class must be a positive number" in err and "Traceback" not in err
    with pytest.raises(ConfigError):
        from haba_cl.cl_runner import RunConfig
        RunConfig(benchmark="split-digits", val_per_class=-3).validate()
