"""Precomputed image embeddings (the conditioner's output) from a file."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from ..errors import FlowlabError

__all__ = ["load_embedding", "save_embedding"]


def load_embedding(path: str | os.PathLike) -> Tensor:
    """One tensor (1, L, C) or (L, C) from .safetensors (key 'cond' or a single key), .pt (weights only) or .npy."""
    p = Path(path)
    if not p.is_file():
        raise FlowlabError(f"embedding file {str(p)!r} not found")
    suffix = p.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            d = load_file(str(p))
            if "cond" in d:
                t = d["cond"]
            elif len(d) == 1:
                t = next(iter(d.values()))
            else:
                raise FlowlabError(f"{p}: several tensors ({', '.join(sorted(d)[:5])}); name the embedding 'cond'")
        elif suffix in (".pt", ".pth"):
            t = torch.load(str(p), map_location="cpu", weights_only=True)
            if isinstance(t, dict) and "cond" in t:
                t = t["cond"]
        elif suffix == ".npy":
            import numpy as np

            t = torch.from_numpy(np.load(str(p), allow_pickle=False))
        else:
            raise FlowlabError(f"{p}: unknown embedding format {suffix!r}; use .safetensors, .pt or .npy")
    except FlowlabError:
        raise
    except Exception as e:  # damaged file, pickle needing code, wrong format
        raise FlowlabError(f"cannot read embedding {str(p)!r} ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(t, Tensor) or not t.is_floating_point():
        raise FlowlabError(f"{p}: expected one floating tensor of shape (1, L, C), got {type(t).__name__}")
    return t.float()


def save_embedding(cond: Tensor, path: str | os.PathLike) -> Path:
    """Write (B, L, C) image tokens as .safetensors under the key 'cond'."""
    from safetensors.torch import save_file

    p = Path(path)
    save_file({"cond": cond.detach().float().cpu().contiguous()}, str(p))
    return p
