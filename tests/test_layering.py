"""The package layering (README, Layout) as import-linter contracts: haba_core imports no other project package;
strategies and federated import only haba_core (its top-level API), not each other; haba_cl sits on top; no
package has an import cycle inside; benchmarks reach haba_cl only through its experiment driver and presets."""

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
    assert "5 kept, 0 broken" in ran.stdout


def test_a_broken_layer_is_reported(tmp_path):
    bad = tmp_path / "contracts.ini"
    bad.write_text("[importlinter]\nroot_packages =\n    haba_core\n    haba_cl\n\n"
                   "[importlinter:contract:upside-down]\nname = upside down\ntype = forbidden\n"
                   "source_modules =\n    haba_cl\nforbidden_modules =\n    haba_core\n")
    ran = _lint(bad)
    assert ran.returncode != 0 and "BROKEN" in ran.stdout.upper(), ran.stdout[-2000:]


def test_an_import_cycle_inside_a_package_is_reported(tmp_path):
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    bad = tmp_path / "contracts.ini"
    bad.write_text("[importlinter]\nroot_packages =\n    cyclic\n\n"
                   "[importlinter:contract:acyclic]\nname = acyclic\ntype = acyclic_siblings\nancestors =\n    cyclic\n")
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1]))"
    ran = subprocess.run([sys.executable, "-c", code, str(bad)], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(tmp_path)),
                         capture_output=True, text=True, timeout=240)
    assert ran.returncode != 0 and "No cycles are allowed in cyclic" in ran.stdout, ran.stdout[-2000:]
