"""What a valid client payload must look like, derived from the server's run config and dataset."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from haba_core import ConfigError, HallucinatorConfig, Preprocessor, config_plan, objective_spec

from .distill_settings import distill_config


@dataclass(frozen=True)
class PayloadExpectation:
    """What a valid client payload must look like, derived from the server's run config and dataset."""

    image_shape: tuple[int, int, int]
    num_classes: int
    parameterization: str
    basis_shape: tuple[int, int, int]
    bpc: int
    num_hallucinators: int
    per_class_hallucinators: bool
    hallucinator: HallucinatorConfig
    max_bytes: int
    learned_lr: bool
    value_span: float = math.inf
    """Largest ``|x|`` of a normalised real image (from the dataset's mean/std); bounds uploaded values."""
    shared_bank: bool = False
    """Bases only: the hallucinators are the server's shared bank (:mod:`federated.shared_bank`), not uploaded."""

    def through_shared_bank(self, bpc: int) -> "PayloadExpectation":
        """The expectation of a bases-only upload of ``bpc`` bases per class through the shared bank."""
        return replace(self, bpc=int(bpc), shared_bank=True)

    @property
    def numbers(self) -> tuple[int, int]:
        """(numbers per image, numbers per basis)."""
        return math.prod(self.image_shape), math.prod(self.basis_shape)


def normalised_span(preprocessor: Preprocessor) -> float:
    """Largest ``|x|`` of a pixel in [0, 1] after per-channel normalisation by ``preprocessor``."""
    return max(max(abs((0.0 - m) / s), abs((1.0 - m) / s)) for m, s in zip(preprocessor.mean, preprocessor.std))


def expected_payload(cfg: Mapping[str, Any], image_shape: tuple[int, int, int], num_classes: int,
                     preprocessor: Preprocessor | None = None) -> PayloadExpectation:
    """The plan every client's distillation follows (same call as ``haba_core.distill``).

    With ``preprocessor`` (the server's normalisation) uploaded values are also bounded by its value span.
    """
    dcfg = distill_config(cfg)
    plan = config_plan(dcfg, image_shape, num_classes)
    return PayloadExpectation(tuple(int(s) for s in image_shape), int(num_classes), dcfg.parameterization,
                              tuple(int(s) for s in plan.basis_shape), int(plan.bpc), int(plan.num_hallucinators),
                              bool(plan.per_class_hallucinators), dcfg.hallucinator, int(cfg["max-payload-bytes"]),
                              objective_spec(dcfg.objective).stored_numbers > 0,
                              normalised_span(preprocessor) if preprocessor is not None else math.inf)


def check_shared_bank(cfg: Mapping[str, Any], expect: PayloadExpectation) -> None:
    """:class:`ConfigError` if ``shared-hallucinators`` is on but the plan has no single bank to share."""
    if cfg.get("shared-hallucinators") and (expect.num_hallucinators == 0 or expect.per_class_hallucinators):
        raise ConfigError("shared-hallucinators needs a factorized parameterization with one bank for all classes; "
                          f"the run distils {expect.parameterization!r}"
                          + (" with per-class hallucinators" if expect.per_class_hallucinators else ""))
