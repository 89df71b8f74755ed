"""flowlab: diffusion and flow-matching timestep conventions, derived, sampled and verified.

The names below are loaded on first use (PEP 562), so that ``import flowlab`` and ``flowlab --help``
do not import torch and SymPy; ``from flowlab import CONVENTIONAL`` works as usual.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .errors import FlowlabError  # noqa: E402

#: Public name -> the submodule that defines it (imported on first access).
_LAZY = {
    "Convention": "conventions", "CONVENTIONAL": "conventions", "REVERSED": "conventions",
    "VP_COSINE": "conventions", "CONVENTIONS": "conventions", "get_convention": "conventions",
    "default_device": "device",
}

__all__ = ["__version__", "Convention", "CONVENTIONAL", "REVERSED", "VP_COSINE", "CONVENTIONS",
           "get_convention", "FlowlabError", "default_device"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
