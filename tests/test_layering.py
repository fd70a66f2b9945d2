"""The package layering (README, Layout) as import-linter contracts: haba_core imports no other project package;
strategies and federated import only haba_core, not each other; haba_cl sits on top."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint(config: Path) -> subprocess.CompletedProcess:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1]))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code, str(config)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def test_layering_contracts_hold():
    ran = _lint(ROOT / "pyproject.toml")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert "2 kept, 0 broken" in ran.stdout


def test_a_broken_layer_is_reported(tmp_path):
    bad = tmp_path / "contracts.ini"
    bad.write_text("[importlinter]\nroot_packages =\n    haba_core\n    haba_cl\n\n"
                   "[importlinter:contract:upside-down]\nname = upside down\ntype = forbidden\n"
                   "source_modules =\n    haba_cl\nforbidden_modules =\n    haba_core\n")
    ran = _lint(bad)
    assert ran.returncode != 0 and "BROKEN" in ran.stdout.upper(), ran.stdout[-2000:]
