"""Shared test set-up: small thread count, per-test seeding, an isolated cache directory."""

import pytest
import torch

# Tiny tensors gain nothing from intra-op threads, and oversubscribed cores make them much slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_isolate(tmp_path_factory, monkeypatch):
    torch.manual_seed(0)
    cache = tmp_path_factory.mktemp("haba-cache")
    monkeypatch.setenv("HABA_CACHE", str(cache))
    yield
