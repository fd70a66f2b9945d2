"""Which loss terms a distillation configuration actually computes (for progress displays and logs)."""

from __future__ import annotations

from typing import Any, Mapping


def active_loss_terms(config: Any) -> tuple[str, ...]:
    """Names of the per-iteration loss terms ``config`` (a ``DistillConfig``) switches on.

    ``dd`` always; ``cos`` (the hallucinator-diversity term) and ``adv`` (the adversary's own loss) only
    for factorized parameterizations whose recipe enables them.
    """
    terms = ["dd"]
    factorized = bool(getattr(config, "factorized", False))
    adversary = factorized and bool(config.lambda_cos or config.lambda_con or config.lambda_task)
    if adversary and config.lambda_cos and int(config.hallucinators or 0) > 1:
        terms.append("cos")
    if adversary:
        terms.append("adv")
    return tuple(terms)


def shown_losses(losses: Mapping[str, float], terms: tuple[str, ...] | None) -> dict[str, float]:
    """``losses`` restricted to ``terms`` (all of them when ``terms`` is ``None``)."""
    return {k: v for k, v in losses.items() if terms is None or k in terms}
