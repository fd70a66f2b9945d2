"""Avalanche's evaluation of a class-incremental run: per-experience and stream accuracy, stream forgetting."""

from __future__ import annotations

import warnings

ACC_KEY = "Top1_Acc_Stream/eval_phase/test_stream/Task000"
FORGET_KEY = "StreamForgetting/eval_phase/test_stream"


def experience_accuracy_key(j: int) -> str:
    """The metric name of the accuracy on experience ``j`` of the test stream."""
    return f"Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{j:03d}"


def stream_evaluator(verbose: bool):
    """An ``EvaluationPlugin`` with accuracy and forgetting per experience and per stream (a logger if ``verbose``)."""
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
    from avalanche.logging import InteractiveLogger
    from avalanche.training.plugins import EvaluationPlugin

    loggers = [InteractiveLogger()] if verbose else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                forgetting_metrics(experience=True, stream=True), loggers=loggers)


__all__ = ["ACC_KEY", "FORGET_KEY", "experience_accuracy_key", "stream_evaluator"]
