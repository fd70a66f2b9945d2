"""Named TOML presets shipped in ``haba_cl/presets/`` (the paper's settings), and ``--config`` lookup."""

from __future__ import annotations

from pathlib import Path

from haba_core import ConfigError

from .cli_errors import _toml

PRESET_DIR = Path(__file__).resolve().parent / "presets"


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted (``cifar10-ipc10-mtt``, ...)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(list_presets())}")
    return path


def describe_preset(name: str) -> str:
    """The preset's ``description`` line (empty if it has none)."""
    with open(preset_path(name), "rb") as f:
        return str(_toml.load(f).get("description", ""))


def resolve_config(value: str) -> Path:
    """``--config`` value → file: an existing path, else a preset name (with or without ``.toml``)."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    name = value[:-5] if value.endswith(".toml") else value
    if "/" not in value and "\\" not in value and (PRESET_DIR / f"{name}.toml").is_file():
        return PRESET_DIR / f"{name}.toml"
    if path.exists():
        raise ConfigError(f"--config {value}: not a file")
    raise ConfigError(f"--config {value}: no such file and no preset of that name; "
                      f"presets: {', '.join(list_presets())}")
