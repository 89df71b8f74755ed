"""flowlab: diffusion and flow-matching timestep conventions, derived, sampled and verified."""
from __future__ import annotations

__version__ = "0.1.0"

from .conventions import CONVENTIONAL, CONVENTIONS, REVERSED, VP_COSINE, Convention, get_convention  # noqa: E402
from .errors import FlowlabError  # noqa: E402
from .device import default_device  # noqa: E402

__all__ = ["__version__", "Convention", "CONVENTIONAL", "REVERSED", "VP_COSINE", "CONVENTIONS",
           "get_convention", "FlowlabError", "default_device"]
