"""``python -m benchmarks.ablations --quick`` runs end to end and prints one table (issue 15)."""

import json

from benchmarks import ablations


def test_ablations_quick_runs_and_reports_every_row(tmp_path, capsys):
    assert ablations.main(["--quick", "--seeds", "1", "--device", "cpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "ablations.json").read_text())
    rows = result["rows"]
    assert [r["preset"] for r in rows] == [n.removeprefix("ablation-").removesuffix("-cpu")
                                           for n in ablations.QUICK_PRESETS]
    assert result["meta"]["split"] == "val" and result["meta"]["mode"] == "quick"
    for r in rows:
        assert r["stored_bytes"] > 0 and r["ipc_equivalent"] > 0 and r["n"] == 1
        assert ("frozen_mean" in r) == (r["hallucinators"] > 0)  # every learned HaBa row has its frozen null
        assert f"| {r['preset']} |" in out
    assert "| paper | preset (-cpu) |" in out
    every = ablations.cpu_presets()
    assert len(every) >= 17 and all(n.startswith("ablation-") and n.endswith("-cpu") for n in every)
