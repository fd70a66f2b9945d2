"""Exceptions raised by the HaBa core.

Every error a user can cause has its own class, so wrappers (the CLI, the Avalanche plugin, the Flower
server) can turn it into one clear message without catching unrelated bugs.
"""


class HabaError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class DatasetNotFoundError(HabaError, FileNotFoundError):
    """The files of a dataset are not where they were looked for."""


class UnknownNameError(HabaError, ValueError):
    """A dataset, network, objective or parameterization name is not known."""


class BudgetError(HabaError, ValueError):
    """A storage budget cannot hold the requested configuration (e.g. one basis per class)."""


class FormatError(HabaError, ValueError):
    """A saved factorized dataset, checkpoint or expert buffer is unreadable, truncated or inconsistent."""


class NonFiniteLossError(HabaError, FloatingPointError):
    """Distillation produced a NaN/inf loss; the last good checkpoint is kept."""


class ConfigError(HabaError, ValueError):
    """A configuration value is invalid."""


class DistillationInterrupted(HabaError):
    """A run was stopped on request after a completed iteration; its checkpoint allows ``resume``."""

    def __init__(self, iteration: int, checkpoint_dir: str | None):
        self.iteration, self.checkpoint_dir = iteration, checkpoint_dir
        where = f"checkpoint saved in {checkpoint_dir}" if checkpoint_dir else "no checkpoint directory was set"
        super().__init__(f"interrupted after iteration {iteration}; {where}")
