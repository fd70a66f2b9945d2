"""``haba-cl``'s protocol names and the old spellings it still accepts (the strategy names live in
:mod:`strategies.registry`)."""

import sys

#: avalanche: the continual model's stream accuracy; fresh-network: a network trained on the memory only
PROTOCOLS = ("avalanche", "fresh-network")
#: old names, still accepted with a warning ("dm" named an objective, a strategy and a protocol at once)
DEPRECATED_STRATEGIES = {"dm": "distilled-plain"}
DEPRECATED_PROTOCOLS = {"dm": "fresh-network"}


def current_name(name: str, deprecated: dict[str, str], what: str) -> str:
    """``name`` lower-cased, an old spelling replaced by its current one (with a warning line on stderr)."""
    key = name.strip().lower()
    if key in deprecated:
        print(f"haba-cl: warning: {what} {key!r} is deprecated; use {deprecated[key]!r}", file=sys.stderr, flush=True)
        return deprecated[key]
    return key


def current_strategies(names: str | list[str]) -> list[str]:
    """Comma-separated or listed strategy names with old spellings replaced (unknown names pass through)."""
    items = names.split(",") if isinstance(names, str) else list(names)
    return [current_name(s, DEPRECATED_STRATEGIES, "strategy") for s in items if s.strip()]
