"""Device choice: CUDA when present, CPU otherwise, overridable with ``FLOWLAB_DEVICE``."""
from __future__ import annotations

import os

import torch

from .errors import FlowlabError

DEVICE_ENV = "FLOWLAB_DEVICE"


def default_device() -> torch.device:
    """``$FLOWLAB_DEVICE`` if set (``cpu``, ``cuda``, ``cuda:1``), else CUDA when available, else CPU."""
    name = os.environ.get(DEVICE_ENV)
    if name:
        return resolve_device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """Parse a device name; ``None`` or ``"auto"`` means :func:`default_device`. Clear error if unusable."""
    if name is None or name == "auto":
        return default_device()
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise FlowlabError(f"cannot read device {name!r} ({exc}); use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if dev.type not in ("cpu", "cuda"):
        raise FlowlabError(f"device {name!r}: flowlab runs on 'cpu' or 'cuda' ('cuda:N') only; a {dev.type!r} device "
                           "is not supported (its kernels, generators and memory checks differ); use 'cpu' or 'cuda'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FlowlabError(f"device {name!r} asked for, but this torch sees no CUDA GPU; use device='cpu' (--device cpu on the command line)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise FlowlabError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev
