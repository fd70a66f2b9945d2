"""Keep the real-data studies from rotting: run each one's ``--quick`` mode on the embedded digits set."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _run(args, tmp_path, timeout=420):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.timeout(480)
def test_compute_matched_quick(tmp_path):
    _run(["-m", "benchmarks.compute_matched", "--quick", "--out", str(tmp_path), "--save-sets", str(tmp_path / "sets")],
         tmp_path)
    data = json.loads((tmp_path / "compute_matched_digits_ipc2_dm_val_quick.json").read_text())
    assert data["meta"]["args"]["split"] == "val"  # model selection never scores on the test split
    assert "partial" not in data["meta"]  # the finished study's file, not a row-by-row one
    variants = {r["variant"] for r in data["rows"]}
    assert {"plain", "haba-pca", "random-coreset", "herding-coreset"} <= variants
    for r in data["rows"]:
        assert r["stored_bytes"] > 0 and r["ipc_equivalent"] <= 2.0
    assert max(r["acc"] for r in data["rows"]) > 20  # the smoke run trains for real (chance is 10 %)
    from haba_core import FactorizedDataset
    saved = FactorizedDataset.load(tmp_path / "sets" / "haba-pca_seed0")  # --save-sets keeps each distilled set
    assert saved.num_hallucinators == next(r["hallucinators"] for r in data["rows"] if r["variant"] == "haba-pca")
    assert (tmp_path / "compute_matched_digits_ipc2_dm_val_quick.png").stat().st_size > 1000


def test_validation_split_is_fixed_balanced_and_disjoint():
    from benchmarks.datasets import load_pair, validation_split
    from haba_core import load_dataset

    full = load_dataset("digits")
    train, val = load_pair("digits", ROOT, split="val")
    again, val2 = load_pair("digits", ROOT, split="val")
    assert len(train) + len(val) == len(full)
    assert torch.equal(val.images, val2.images) and torch.equal(train.labels, again.labels)  # fixed split
    assert torch.bincount(val.labels, minlength=10).tolist() == [30] * 10  # class-balanced
    rows = {tuple(x.flatten().tolist()) for x in train.images}
    assert sum(tuple(x.flatten().tolist()) in rows for x in val.images) <= 2  # disjoint (up to duplicate digits)
    _, test = load_pair("digits", ROOT, split="test")
    assert len(test) == len(load_dataset("digits", split="test"))
    tr, va = validation_split(full, 5, seed=1)
    assert len(va) == 50 and len(tr) == len(full) - 50


def test_load_splits_gives_the_same_sets_as_each_split_alone():
    from benchmarks.datasets import load_pair, load_splits

    train, val, test = load_splits("digits", ROOT, test_limit=200)
    tr_v, va = load_pair("digits", ROOT, split="val", test_limit=200)
    _, te = load_pair("digits", ROOT, split="test", test_limit=200)
    assert torch.equal(train.images, tr_v.images) and torch.equal(val.images, va.images)
    assert torch.equal(test.images, te.images) and torch.equal(test.labels, te.labels)
    assert len(val) == len(test) == 200


def test_compute_matched_summary_reports_the_test_column_beside_validation():
    from benchmarks.compute_matched import summarise

    rows = [{"variant": "idc", "seed": s, "acc": 40.0 + s, "acc_runs": [40.0 + s], "acc_test": 30.0 + 2 * s,
             "acc_test_runs": [30.0 + 2 * s], "iterations": 10, "iteration_s": 1.0, "stored_bytes": 8,
             "ipc_equivalent": 2.0, "bpc": 8, "hallucinators": 0} for s in (0, 1)]
    (row,) = summarise(rows)
    assert (row["accuracy"], row["test accuracy"]) == ("40.50 ± 0.71", "31.00 ± 1.41")
    (single,) = summarise([{**rows[0], "acc_runs": [39.0, 41.0], "acc_test_runs": [29.0, 31.0]}])
    assert single["test accuracy"] == "30.00 ± 1.41"  # one seed: the spread of its evaluation runs
    assert "test accuracy" not in summarise([{k: v for k, v in rows[0].items() if "test" not in k}])[0]


def test_frozen_variants_freeze_only_the_hallucinators():
    from benchmarks.variants import variant_config

    for name in ("modest", "modest-div", "modest-pre", "modest-pre-fill-mmd", "modest-pre-fast"):
        learned, frozen = variant_config(name, ipc=2), variant_config(f"{name}-frozen", ipc=2)
        assert frozen.resolved_lr_hallucinators == 0.0 and frozen.lr_affine == 0.0
        frozen.lr_hallucinators, frozen.lr_affine = learned.lr_hallucinators, learned.lr_affine
        assert frozen == learned
    div = variant_config("modest-div", ipc=2)
    assert div.adversary_renew and div.lambda_cos == 1.0 and div.hallucinators_per_step > 1  # L_cos is active
    mmd = variant_config("modest-pre-fill-mmd-frozen", ipc=2)
    assert (mmd.dm.match, mmd.budget_rule, mmd.hallucinator_pretrain_steps) == ("mmd", "fill", 300)
    fast = variant_config("modest-pre-fast-frozen", ipc=11)  # fixed-bank's step structure, pretrained bank
    assert (fast.hallucinators_per_step, fast.hallucinator_pairing, fast.hallucinator_pretrain_steps) == (1, "per_basis", 300)


def test_federated_overrides_and_first_seed():
    import argparse

    from benchmarks.harness import parse_overrides
    from benchmarks.harness import seed_list

    assert parse_overrides(["iterations=40", "alpha=0.1", "dataset=mnist"]) == {
        "iterations": 40, "alpha": 0.1, "dataset": "mnist"}
    with pytest.raises(SystemExit):
        parse_overrides(["iterations"])
    assert seed_list(argparse.Namespace(seeds=2, first_seed=3)) == [3, 4]


def test_modest_recipe_matches_its_benchmark_variant():
    from benchmarks.variants import variant_config
    from haba_core import recipe_config

    # the benchmarks' "modest" rows ran before the recipe took the fill budget rule (session 16)
    assert variant_config("modest", ipc=2, budget_rule="fill") == recipe_config("modest", ipc=2)
    assert variant_config("modest-adam4", ipc=2, budget_rule="fill") == recipe_config("modest", ipc=2)
    assert variant_config("modest", ipc=2) == recipe_config("modest", ipc=2, budget_rule="exact")
    # the recipe chosen on validation at DM IPC-11 is exactly the benchmarked frozen one-hallucination-per-step row
    assert variant_config("modest-fast-frozen", ipc=11, budget_rule="fill") == recipe_config("fixed-bank", ipc=11)
    assert variant_config("modest-fast-frozen", ipc=11) == recipe_config("fixed-bank", ipc=11, budget_rule="exact")
    from haba_core import config_plan  # at IPC 11 exact leaves < 5 % unused, so fill plans as exact: 42 + 5
    plans = {name: config_plan(cfg, (3, 32, 32), 10) for name, cfg in (
        ("fixed-bank", recipe_config("fixed-bank", ipc=11)), ("five", variant_config("modest-fast-frozen", ipc=11)),
        ("four", variant_config("modest-fast-h4-frozen", ipc=11)))}
    assert (plans["fixed-bank"].bpc, plans["fixed-bank"].num_hallucinators) == (42, 5) == \
        (plans["five"].bpc, plans["five"].num_hallucinators)
    assert (plans["four"].bpc, plans["four"].num_hallucinators) == (43, 4)


@pytest.mark.timeout(480)
def test_federated_quick(tmp_path):
    _run(["-m", "benchmarks.federated", "--quick", "--datasets", "digits", "--partitions", "iid",
          "--parameterizations", ",idc", "--shared", "--set", "val-per-class=10", "--out", str(tmp_path)], tmp_path)
    data = json.loads((tmp_path / "federated.json").read_text())
    methods = {r["method"] for r in data["rows"]}
    assert all(r["val_value"] for r in data["rows"])  # a validation column beside the test column
    assert all(len(r["val_values"]) == len(r["values"]) for r in data["rows"])  # per seed, for benchmarks.combine
    from benchmarks.combine import load_rows
    variants = {r["variant"] for r in load_rows([tmp_path / "federated.json"])}
    assert {"haba-one-shot", "idc-one-shot"} <= variants and any(v.startswith("fedavg-") for v in variants), variants
    assert {"HaBa one-shot", "IDC one-shot", "FedAvg", "HaBa, one shared bank (bank round + 1)"} <= methods, methods
    shared = next(r for r in data["rows"] if r["method"].startswith("HaBa, one shared bank"))
    assert shared["rounds"] == 2 and shared["n"] == 1 and shared["stored_bytes"] > 0
    payload = {r["method"]: r["stored_bytes"] for r in data["rows"] if r["stored_bytes"]}
    assert payload["IDC one-shot"] >= payload["HaBa one-shot"] * 0.8  # the same per-client byte budget


@pytest.mark.timeout(480)
def test_continual_quick(tmp_path):
    out = tmp_path / "continual.json"
    _run(["-m", "benchmarks.continual", "--quick", "--benchmarks", "split-digits", "--strategies", "haba,replay,naive",
          "--out", str(out)], tmp_path)
    data = json.loads(out.read_text())
    assert data["runs"]
    run = data["runs"][0]
    assert run["benchmark"] == "split-digits" and run["mem_size"] == 100


@pytest.mark.timeout(300)
def test_hallucinator_drift_quick_shows_sgd_blow_up_and_adam_bounded(tmp_path):
    _run(["-m", "benchmarks.hallucinator_drift", "--quick", "--out", str(tmp_path)], tmp_path)
    rows = json.loads((tmp_path / "hallucinator_drift_digits_ipc2_dc_quick.json").read_text())["rows"]

    def shifts(variant, its):
        row = next(r for r in rows if r["variant"] == variant and r["iterations"] == its)
        return [float(v) for v in row["shift_norms"].split(" / ")]

    # the same data-driven start for both; after 2 DC steps SGD at η_B has blown it up, Adam 1e-4 has not
    assert shifts("modest", 0) == shifts("idc-haba-pca-nocos-s2", 0)
    assert max(shifts("idc-haba-pca-nocos-s2", 2)) > 10 * max(shifts("idc-haba-pca-nocos-s2", 0))
    assert max(shifts("modest", 2)) < 2 * max(shifts("modest", 0))


@pytest.mark.timeout(480)
def test_hostile_clients_quick(tmp_path):
    _run(["-m", "benchmarks.hostile_clients", "--quick", "--out", str(tmp_path)], tmp_path)
    rows = json.loads((tmp_path / "hostile_clients.json").read_text())["rows"]
    by = {(r["attack"], r["defence"]): r for r in rows}
    assert by[("huge-bases", "none")]["hostile_dropped"] == 1 and by[("huge-bases", "none")]["kinds"] == "magnitude"
    assert by[("flip", "score")]["hostile_dropped"] == 1 and by[("flip", "score")]["kinds"] == "sanity"
    assert all(r["failed_runs"] == 0 for r in rows)


def test_compute_matched_set_overrides_every_variant_last():
    import argparse

    from benchmarks.compute_matched import run_config
    from haba_core import ConfigError

    args = argparse.Namespace(objective="dm", ipc=2, iterations=5, time_budget=1.0, clock="wall", net_width=8, device="cpu",
                              batch_real=16, buffer=None, set=["precision=bf16", "net_depth=2", "dm.batch_real=8"])
    for name in ("modest", "idc"):
        cfg = run_config(name, args, seed=3)
        assert (cfg.precision, cfg.net_depth, cfg.dm.batch_real, cfg.net_width, cfg.seed) == ("bf16", 2, 8, 8, 3)
    assert run_config("modest", argparse.Namespace(**{**vars(args), "set": []}), 0).precision == "fp32"
    with pytest.raises(ConfigError, match="nosuch"):
        run_config("modest", argparse.Namespace(**{**vars(args), "set": ["nosuch=1"]}), 0)


def test_compute_matched_keeps_finished_rows_when_stopped_early(tmp_path, monkeypatch):
    """Each finished variant is written at once (marked partial): a long study stopped midway keeps its rows."""
    import benchmarks.compute_matched as cm

    done = []

    def fake_variant(name, train, test, args, seed, also=None):
        if done:
            raise KeyboardInterrupt  # the study is stopped during its second variant
        done.append(name)
        return {"variant": name, "seed": seed, "acc": 50.0, "iterations": 3}

    monkeypatch.setattr(cm, "run_variant", fake_variant)
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        cm.main(["--dataset", "digits", "--variants", "idc,modest", "--no-coreset", "--out", str(out),
                 "--md", str(tmp_path / "b.md")])
    data = json.loads((out / "compute_matched_digits_ipc2_dm_val.json").read_text())
    assert data["meta"]["partial"] is True and [r["variant"] for r in data["rows"]] == ["idc"]


def test_combine_merges_processes_and_pairs_by_seed(tmp_path):
    from benchmarks.combine import load_rows, main, paired

    def row(variant, seed, acc, test):
        return {"variant": variant, "seed": seed, "acc": acc, "acc_runs": [acc], "acc_test": test,
                "acc_test_runs": [test], "iterations": 5, "iteration_s": 1.0, "stored_bytes": 8,
                "ipc_equivalent": 2.0, "bpc": 2, "hallucinators": 0}

    (tmp_path / "a.json").write_text(json.dumps({"rows": [row("idc", 0, 40, 30), row("haba", 0, 42, 29)]}))
    (tmp_path / "b.json").write_text(json.dumps({"rows": [row("idc", 1, 41, 31), row("haba", 1, 40, 33)]}))
    rows = load_rows([tmp_path / "a.json", tmp_path / "b.json"])
    d = paired(rows, "haba", "idc")
    assert (d["per seed"], d["mean ± std"], d["ahead"]) == ("+2.00, −1.00", "+0.50 ± 2.12", "1/2")
    assert paired(rows, "haba", "idc", "acc_test")["per seed"] == "−1.00, +2.00"
    assert paired(rows, "haba", "plain") is None
    main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--pairs", "haba:idc"])
    with pytest.raises(SystemExit, match="idc seed 0 is in both"):
        load_rows([tmp_path / "a.json", tmp_path / "a.json"])
    with pytest.raises(SystemExit, match="A:B"):
        main([str(tmp_path / "a.json"), "--pairs", "haba"])


def test_compute_matched_refuses_experts_that_saw_the_validation_split(tmp_path):
    (tmp_path / "buffer.json").write_text(json.dumps({"format": "haba-expert-buffer", "dataset": "digits"}))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "benchmarks.compute_matched", "--dataset", "digits", "--objective", "mtt",
            "--buffer", str(tmp_path), "--variants", "plain", "--no-coreset", "--out", str(tmp_path / "o")]
    for split in ("val", "both"):
        proc = subprocess.run([*base, "--split", split], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "haba-buffer --val-per-class 30" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_combine_reads_federated_results_and_tags_files(tmp_path, capsys):
    from benchmarks.combine import load_rows, main, paired

    def fed(seeds, rows):
        return {"name": "federated", "meta": {"seeds": seeds}, "rows": rows}

    def row(method, tests, vals=None, val_value=None):
        r = {"dataset": "cifar10", "partition": "dirichlet α=0.5", "ipc": 2, "method": method, "values": tests,
             "val_value": val_value, "stored_bytes": 100.0, "total_bytes": 1000.0}
        return {**r, **({"val_values": vals} if vals else {})}

    (tmp_path / "a.json").write_text(json.dumps(fed([0, 1], [
        row("HaBa one-shot", [40.0, 42.0], [41.0, 43.0]), row("HaBa, one shared bank (bank round + 1)", [41.0, 41.0], [42.0, 44.0])])))
    (tmp_path / "b.json").write_text(json.dumps(fed([0], [row("HaBa one-shot", [39.0], val_value="40.50 ± 0.00")])))
    rows = load_rows([tmp_path / "a.json", f"{tmp_path / 'b.json'}@frozen"])
    assert {r["variant"] for r in rows} == {"haba-one-shot", "haba-one-shared-bank-bank-round-1", "haba-one-shot@frozen"}
    d = paired(rows, "haba-one-shared-bank-bank-round-1", "haba-one-shot", "acc_test")
    assert (d["per seed"], d["ahead"]) == ("+1.00, −1.00", "1/2")
    d = paired(rows, "haba-one-shot", "haba-one-shot@frozen")  # validation of a one-seed file read from val_value
    assert (d["per seed"], d["ahead"]) == ("+0.50", "1/1")
    main([str(tmp_path / "a.json"), f"{tmp_path / 'b.json'}@frozen", "--pairs", "haba-one-shot:haba-one-shot@frozen"])
    out = capsys.readouterr().out
    assert "| haba-one-shot@frozen | HaBa one-shot | 40.50 ± 0.00 | 39.00 ± 0.00 | 1 |" in out
    (tmp_path / "c.json").write_text(json.dumps(fed([0, 1], [row("HaBa one-shot", [40.0])])))
    with pytest.raises(SystemExit, match="1 test values for 2 seeds"):
        load_rows([tmp_path / "c.json"])
    (tmp_path / "d.json").write_text(json.dumps(fed([0], [{"method": "HaBa one-shot", "values": [40.0]}])))
    with pytest.raises(SystemExit, match="malformed federated result"):
        load_rows([tmp_path / "d.json"])  # no dataset / partition / ipc
    with pytest.raises(SystemExit, match="haba-one-shot seed 0 is in both"):
        load_rows([tmp_path / "a.json", tmp_path / "b.json"])  # untagged: the same variant twice
    (tmp_path / "m.json").write_text(json.dumps({"rows": [{"variant": "idc", "seed": 0, "acc": 40.0}]}))
    with pytest.raises(SystemExit, match="cannot share one table"):
        load_rows([tmp_path / "a.json", tmp_path / "m.json"])
