"""Query the VAE's occupancy field on a grid: dense in chunks, or coarse-to-fine (octree).

The grid is Hunyuan3D-2's: per axis ``linspace(-b, b, R + 1)`` (b = 1.01 by default), float32,
indexed 'ij' (x slowest), so a volume of logits has shape ``(B, R + 1, R + 1, R + 1)`` with
``logits[b, i, j, k]`` at ``(axis[i], axis[j], axis[k])``. Logits are positive inside.

The latent tokens' key / value projection is computed once per shape (:meth:`GeoDecoder.prepare`)
and reused for every chunk of points.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .vae import KV, GeoDecoder

__all__ = ["grid_axis", "grid_points", "decode_dense", "decode_hierarchical", "octree_levels"]

#: Progress callback: called with the number of points just decoded.
Progress = Callable[[int], None]


def grid_axis(resolution: int, bounds: float = 1.01) -> Tensor:
    """``linspace(-bounds, bounds, resolution + 1)`` computed as the reference does (numpy, float32)."""
    if resolution < 1:
        raise ValueError(f"octree resolution must be >= 1, got {resolution}")
    return torch.from_numpy(np.linspace(-bounds, bounds, int(resolution) + 1, dtype=np.float32))


def grid_points(axis: Tensor, flat_index: Tensor) -> Tensor:
    """Points of the 'ij' grid built from ``axis`` at flat indices (P,) -> (P, 3)."""
    n = axis.shape[0]
    i = torch.div(flat_index, n * n, rounding_mode="floor")
    j = torch.div(flat_index, n, rounding_mode="floor") % n
    k = flat_index % n
    return torch.stack((axis[i], axis[j], axis[k]), dim=-1)


def _query_chunks(geo: GeoDecoder, kv: KV, axis: Tensor, flat_index: Tensor | int, chunk_size: int,
                  progress: Progress | None) -> Tensor:
    """Logits (B, P) float32 at the grid points ``flat_index`` (P,), ``chunk_size`` points a call.

    An int ``flat_index`` P means all points 0 .. P - 1 (their indices are made chunk by chunk).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk_size}")
    out = []
    total = flat_index if isinstance(flat_index, int) else flat_index.shape[0]
    for start in range(0, total, chunk_size):
        if isinstance(flat_index, int):
            idx = torch.arange(start, min(start + chunk_size, total), device=axis.device)
        else:
            idx = flat_index[start:start + chunk_size]
        out.append(geo.query(grid_points(axis, idx), kv).float())
        if progress is not None:
            progress(idx.shape[0])
    if not out:
        return torch.zeros(kv.k.shape[0], 0, device=axis.device)
    return torch.cat(out, dim=1)


@torch.no_grad()
def decode_dense(geo: GeoDecoder, tokens: Tensor, resolution: int = 384, *, bounds: float = 1.01,
                 chunk_size: int = 8000, progress: Progress | None = None) -> Tensor:
    """Logits on the full ``(R + 1)^3`` grid.

    tokens: (B, N, width) decoded latent tokens (:meth:`ShapeVAE.forward` output).
    Returns (B, R + 1, R + 1, R + 1) float32, positive = inside. The chunking changes nothing
    but peak memory.
    """
    axis = grid_axis(resolution, bounds).to(tokens.device)
    n = axis.shape[0]
    kv = geo.prepare(tokens)
    return _query_chunks(geo, kv, axis, n ** 3, chunk_size, progress).view(tokens.shape[0], n, n, n)


def octree_levels(resolution: int, min_resolution: int = 63) -> list[int]:
    """Resolutions from coarse to fine, halving ``resolution`` while the half stays >= min_resolution.

    384 -> [96, 192, 384]; 256 -> [64, 128, 256]; odd resolutions stop halving.
    """
    levels = [int(resolution)]
    while levels[-1] % 2 == 0 and levels[-1] // 2 >= min_resolution:
        levels.append(levels[-1] // 2)
    return levels[::-1]


def _near_surface(logits: Tensor, threshold: float) -> Tensor:
    """Mask (B, n, n, n) of grid points with |logit| < threshold or a sign change to a 6-neighbour,
    dilated by a 3x3x3 box."""
    inside = logits > 0
    near = logits.abs() < threshold
    for dim in (1, 2, 3):
        a = inside.narrow(dim, 0, inside.shape[dim] - 1)
        b = inside.narrow(dim, 1, inside.shape[dim] - 1)
        change = a != b
        pad_lo = [0, 0] * (3 - dim) + [1, 0]
        pad_hi = [0, 0] * (3 - dim) + [0, 1]
        near = near | F.pad(change, pad_lo) | F.pad(change, pad_hi)
    return F.max_pool3d(near[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0


@torch.no_grad()
def decode_hierarchical(geo: GeoDecoder, tokens: Tensor, resolution: int = 384, *, bounds: float = 1.01,
                        chunk_size: int = 8000, min_resolution: int = 63, threshold: float = 0.95,
                        progress: Progress | None = None) -> Tensor:
    """Coarse-to-fine logits on the same ``(R + 1)^3`` grid as :func:`decode_dense`.

    The coarsest level of :func:`octree_levels` is decoded densely. Each finer level (twice the
    resolution, so every coarse point is also a fine point and keeps its value) evaluates the
    network only at the new fine points next to coarse points near the surface
    (:func:`_near_surface`); elsewhere the fine logits are the coarse ones upsampled trilinearly,
    which keep their sign away from the surface. Near the surface the values equal the dense
    decode's (the same queries; coarse-grid points up to an ulp of their float32 coordinates), so
    marching cubes finds the same surface wherever the coarse level resolved it.

    ``threshold`` is in logit units (0.95 suits the released VAE; a random-weight toy field may lie
    entirely within it, and then every point is evaluated).

    Not a port of hy3dgen 2.0.2's HierarchicalVolumeDecoding: that one computes the fine-level query
    coordinates in an integer dtype, so every fine query lands on (-1, -1, -1) (checked with the
    reference installed); its FlashVDM decoder is the one the release uses.

    tokens: (B, N, width). Returns (B, R + 1, R + 1, R + 1) float32.
    """
    levels = octree_levels(resolution, min_resolution)
    logits = decode_dense(geo, tokens, levels[0], bounds=bounds, chunk_size=chunk_size, progress=progress)
    if len(levels) == 1:
        return logits
    kv = geo.prepare(tokens)
    for res in levels[1:]:
        n = res + 1
        axis = grid_axis(res, bounds).to(tokens.device)
        near = _near_surface(logits, threshold)  # (B, m, m, m) coarse
        fine = F.interpolate(logits[:, None], size=(n, n, n), mode="trilinear", align_corners=True)[:, 0]
        # a fine point is near when any coarse point of its cell corner set is near
        near_f = F.interpolate(near[:, None].float(), size=(n, n, n), mode="trilinear", align_corners=True)[:, 0] > 0
        # points of the coarse grid (even indices on every axis) are known already
        even = torch.zeros(n, dtype=torch.bool, device=near_f.device)
        even[::2] = True
        coarse_pt = even[:, None, None] & even[None, :, None] & even[None, None, :]
        mask = (near_f.any(dim=0) & ~coarse_pt).reshape(-1)  # shared across the batch: one query set
        flat = torch.nonzero(mask).squeeze(1)
        values = _query_chunks(geo, kv, axis, flat, chunk_size, progress)  # (B, P)
        fine = fine.reshape(fine.shape[0], -1)
        fine[:, flat] = values
        logits = fine.view(-1, n, n, n)
    return logits
