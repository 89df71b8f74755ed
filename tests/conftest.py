"""Shared test configuration: GPU tests skip cleanly without CUDA.

MPLBACKEND is deliberately left alone: notebook kernels inherit this process's environment, and
a forced Agg backend would drop the stored figures that nbval expects (the inline backend shows them).
"""
from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The portability run (tools/portability.py) takes ~15 min: only when asked for with -m portability.
    if "portability" not in (config.getoption("-m") or ""):
        opt_in = pytest.mark.skip(reason="opt-in: run with -m portability (about 15 min)")
        for item in items:
            if "portability" in item.keywords:
                item.add_marker(opt_in)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is visible to torch")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one CPU thread: tiny tensors are faster without thread oversubscription on
    shared cores, and fp16 reference parity must not depend on the core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
