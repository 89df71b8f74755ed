"""Shared test configuration: GPU tests skip cleanly without CUDA; matplotlib never opens windows."""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is visible to torch")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
