"""The names of ``haba-cl``'s strategies, in one light module (no Avalanche import) for the parser and the runner."""

STRATEGIES = ("haba", "replay", "herding", "dm", "idc", "naive", "er", "gdumb", "lwf", "ewc")
MEMORY_STRATEGIES = ("haba", "replay", "herding", "dm", "idc", "er", "gdumb")
#: the distilled-memory strategies: the HaBa plugin with another parameterization (None = the config's)
DISTILLED = {"haba": None, "dm": "plain", "idc": "idc"}
