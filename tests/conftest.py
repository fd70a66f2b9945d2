"""Shared test set-up: small thread count, per-test seeding, an isolated cache directory."""

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed_and_isolate(tmp_path_factory, monkeypatch):
    torch.manual_seed(0)
    cache = tmp_path_factory.mktemp("haba-cache")
    monkeypatch.setenv("HABA_CACHE", str(cache))
    yield
