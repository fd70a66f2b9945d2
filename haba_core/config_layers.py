"""Layered configuration: one ``--set KEY=VALUE`` syntax, one deep merge, one check against a dataclass.

Every entry point layers its settings the same way — built-in defaults < recipe / preset < configuration file
< ``--set`` items < explicit flags (later layers win, tables merge key by key) — and checks each layer against
the configuration dataclass, so a wrong key or type is a :class:`ConfigError` naming the key and its source.

``--set`` syntax (``haba-distill``, ``haba-cl``, ``haba-fl``): ``KEY=VALUE`` with a dotted ``KEY`` for nested
tables (``hallucinator.depth=2``) and ``VALUE`` read as a TOML literal (``2``, ``1e-5``, ``true``, ``"text"``,
``[1, 2]``, ``{a = 1}``); anything that is not a TOML literal (``imagefolder:/data``, ``text``) is taken as a
plain string, and ``none`` / ``null`` mean "unset" (``None``).
"""

from __future__ import annotations

import copy
import datetime
import types
import typing
from dataclasses import fields, is_dataclass
from typing import Any, Iterable, Mapping, Sequence

from .errors import ConfigError

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as _toml  # type: ignore[no-redef]

SET_SYNTAX = ("dotted keys reach nested tables, values are TOML literals (2, 1e-5, true, \"text\", [1, 2]), "
              "anything else is a plain string, none/null unsets; repeatable; see docs/cli.md, 'Settings and --set'")


def parse_value(raw: str) -> Any:
    """One ``--set`` value: a TOML literal, else the plain string; ``none`` / ``null`` → ``None``."""
    text = raw.strip()
    try:
        value = _toml.loads(f"v = {text}")["v"]
    except _toml.TOMLDecodeError:
        value = text
    if isinstance(value, (datetime.date, datetime.time)):  # 2024-01-01 is a name here, not a TOML date
        value = text
    if isinstance(value, str) and value.lower() in ("none", "null"):
        return None
    return value


def parse_set(items: Iterable[str] | None, *, snake_case: bool = False, source: str = "--set") -> dict[str, Any]:
    """``["mtt.syn_steps=2", "zca=true"]`` → ``{"mtt": {"syn_steps": 2}, "zca": True}``.

    ``snake_case`` turns ``-`` in keys into ``_`` (dataclass field names); without it keys stay as given
    (Flower run-config keys such as ``train-limit``).
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{source} expects KEY=VALUE (e.g. mtt.syn_steps=2), got {item!r}")
        parts = (key.replace("-", "_") if snake_case else key).split(".")
        if any(not p for p in parts):
            raise ConfigError(f"{source} {item!r}: empty part in the dotted key")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source} {item!r}: {part} is not a table")
        node[parts[-1]] = parse_value(raw)
    return out


def merge_layers(base: Mapping[str, Any], *layers: Mapping[str, Any],
                 exclusive: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """``layers`` over ``base`` in turn, tables merged key by key; the inputs are not modified.

    For each pair in ``exclusive`` (e.g. ``("ipc", "bpc")``) a layer that sets one key (not to ``None``) and not
    the other clears the other's lower value.
    """
    out = copy.deepcopy(dict(base))
    for layer in layers:
        for a, b in exclusive:
            for key, other in ((a, b), (b, a)):
                if layer.get(key) is not None and other not in layer:
                    out[other] = None
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merge_layers(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


# ----------------------------------------------------------------------------- checking against a dataclass
def _allowed(hint: Any) -> tuple[set[type], type | None]:
    """Python types a value may have for ``hint``, and the nested dataclass if there is one."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    args = typing.get_args(hint) if union else (hint,)
    allowed: set[type] = set()
    nested = None
    for a in args:
        if is_dataclass(a):
            nested = a
        elif a is type(None):
            allowed.add(type(None))
        elif a in (bool, int, float, str):
            allowed.add(a)
    return allowed, nested


def _type_name(allowed: set[type]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "none"}
    return " or ".join(names[t] for t in (bool, int, float, str, type(None)) if t in allowed)


def check_value(key: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` checked (and ints widened to float) for a field annotated ``hint``; :class:`ConfigError` names
    ``key`` and ``source`` otherwise."""
    allowed, nested = _allowed(hint)
    if nested is not None and isinstance(value, dict):
        return check_table(value, nested, source, prefix=f"{key}.")
    if nested is not None:
        raise ConfigError(f"{source}: {key} must be a table of {', '.join(f.name for f in fields(nested))}")
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif isinstance(value, int):
        if int in allowed:
            return value
        if float in allowed:
            return float(value)
    elif isinstance(value, float):
        if float in allowed:
            return value
    elif isinstance(value, str) and str in allowed:
        return value
    raise ConfigError(f"{source}: {key} must be {_type_name(allowed)}, got {value!r}")


def check_table(data: Mapping[str, Any], kind: type, source: str, prefix: str = "") -> dict[str, Any]:
    """Check every key of ``data`` against the dataclass ``kind``; unknown keys and wrong types raise
    :class:`ConfigError` naming the key and ``source``."""
    hints = typing.get_type_hints(kind)
    out = {}
    for key, value in data.items():
        if key not in hints:
            known = ", ".join(sorted(hints))
            where = f" in {prefix[:-1]}" if prefix else ""
            raise ConfigError(f"{source}: unknown key {(prefix + key)!r} (known keys{where}: {known})")
        out[key] = check_value(prefix + key, value, hints[key], source)
    return out
