"""The names of ``haba-cl``'s strategies and protocols, in one light module (no Avalanche import) for the parser
and the runner."""

import sys

STRATEGIES = ("haba", "replay", "herding", "distilled-plain", "idc", "naive", "er", "gdumb", "lwf", "ewc")
MEMORY_STRATEGIES = ("haba", "replay", "herding", "distilled-plain", "idc", "er", "gdumb")
#: the distilled-memory strategies: the HaBa plugin with another parameterization (None = the config's)
DISTILLED = {"haba": None, "distilled-plain": "plain", "idc": "idc"}
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
