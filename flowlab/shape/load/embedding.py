"""Precomputed image embeddings (the conditioner's output) from a file."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from ...errors import FlowlabError

__all__ = ["load_embedding", "save_embedding", "check_tokens"]


def check_tokens(t: object, source: str, *, width: int | None = None) -> Tensor:
    """Check image tokens ``(B, L, C)`` (or ``(L, C)``, read as ``B = 1``): a floating tensor, ``B, L, C >= 1``,
    ``C == width`` when given, every entry finite. Returns the 3-D tensor. ``source`` names where it came from."""
    want = f"(B, L, {width})" if width else "(B, L, C)"
    if not isinstance(t, Tensor) or not t.is_floating_point():
        kind = f"a {t.dtype} tensor" if isinstance(t, Tensor) else type(t).__name__
        raise FlowlabError(f"{source}: expected one floating tensor of image tokens {want}, got {kind}")
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or min(t.shape) < 1 or (width is not None and t.shape[-1] != width):
        raise FlowlabError(f"{source}: image tokens have shape {tuple(t.shape)}; expected {want} with at least one "
                           f"token (DINOv2-giant gives (1, 1370, 1536))")
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise FlowlabError(f"{source}: {bad} of {t.numel()} entries of the image tokens are NaN or inf; the "
                           f"embedding is damaged: compute it again (flowlab.shape.load.embedding.save_embedding)")
    return t


def load_embedding(path: str | os.PathLike) -> Tensor:
    """One tensor (1, L, C) or (L, C) from .safetensors (key 'cond' or a single key), .pt (weights only) or .npy.

    Returns (B, L, C) float32, checked by :func:`check_tokens` (non-empty, finite).
    """
    p = Path(path)
    if p.is_dir():
        raise FlowlabError(f"embedding {str(p)!r} is a directory; pass the .safetensors / .pt / .npy file itself")
    if not p.is_file():
        raise FlowlabError(f"embedding file {str(p)!r} not found")
    suffix = p.suffix.lower()
    if suffix in (".pt", ".pth"):
        from .checkpoint import load_tensors_only

        t = load_tensors_only(p, what="embedding", instead="a .safetensors or .npy embedding")
        if isinstance(t, dict) and "cond" in t:
            t = t["cond"]
        return check_tokens(t, str(p)).float()
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
        elif suffix == ".npy":
            import numpy as np

            t = torch.from_numpy(np.load(str(p), allow_pickle=False))
        else:
            raise FlowlabError(f"{p}: unknown embedding format {suffix!r}; use .safetensors, .pt or .npy")
    except FlowlabError:
        raise
    except Exception as e:  # damaged file, object arrays (pickles), wrong format
        raise FlowlabError(f"cannot read embedding {str(p)!r} ({type(e).__name__}: {str(e)[:200]}); the file is "
                           f"damaged or not a {suffix} tensor file: write it again with save_embedding") from None
    return check_tokens(t, str(p)).float()


def save_embedding(cond: Tensor, path: str | os.PathLike) -> Path:
    """Write (B, L, C) image tokens as .safetensors under the key 'cond'."""
    from safetensors.torch import save

    from ...io import write_atomic

    cond = check_tokens(cond, "save_embedding")
    data = save({"cond": cond.detach().float().cpu().contiguous()})
    return write_atomic(path, data)
