"""A small batched renderer: sphere tracing of the analytic SDF, Lambert shading, RGBA on white.

The camera is fixed, like Hunyuan3D-2's front view: a pinhole at ``(0, 0, CAMERA_DISTANCE)`` looking
down -z, y up, x to the right; the image plane z = 0 spans ``[-PLANE_HALF, PLANE_HALF]^2``. Shapes
are y-up like the reference's meshes. Each pixel averages ``supersample^2`` rays (anti-aliasing).
``render`` returns (B, 4, H, W) in [0, 1]: RGB composited on a white background, and alpha.
:func:`to_model_input` turns that into the model's input, (B, 3, H, W) in [-1, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .primitives import ShapeBatch

__all__ = ["render", "to_model_input", "to_pil", "CAMERA_DISTANCE", "PLANE_HALF", "LIGHT"]

CAMERA_DISTANCE = 3.5
PLANE_HALF = 1.1
LIGHT = (-0.45, 0.75, 0.5)
ALBEDO = (0.78, 0.74, 0.68)


def _rays(size: int, device) -> tuple[Tensor, Tensor]:
    """Origin (3,) and unit directions (size * size, 3), row-major from the top-left pixel."""
    c = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1  # -1..1
    yy, xx = torch.meshgrid(-c * PLANE_HALF, c * PLANE_HALF, indexing="ij")  # row 0 = top
    target = torch.stack([xx, yy, torch.zeros_like(xx)], -1).reshape(-1, 3)
    origin = torch.tensor([0.0, 0.0, CAMERA_DISTANCE], device=device)
    d = target - origin
    return origin, d / d.norm(dim=-1, keepdim=True)


@torch.no_grad()
def render(shapes: ShapeBatch, size: int = 64, *, supersample: int = 2, steps: int = 64,
           chunk: int = 256) -> Tensor:
    """Render B shapes -> (B, 4, size, size) float32 in [0, 1] (RGB on white, alpha)."""
    out = []
    for i in range(0, len(shapes), chunk):
        out.append(_render(shapes[i:i + chunk], size, supersample, steps))
    return torch.cat(out)


def _render(shapes: ShapeBatch, size: int, ss: int, steps: int) -> Tensor:
    dev = shapes.device
    n = size * ss
    origin, dirs = _rays(n, dev)
    b, m = len(shapes), dirs.shape[0]
    # every shape lies in the ball of radius 1.05 about the origin: start the march at its front
    t = torch.full((b, m), CAMERA_DISTANCE - 1.1, device=dev)
    t_far = CAMERA_DISTANCE + 1.1
    hit = torch.zeros(b, m, dtype=torch.bool, device=dev)
    for _ in range(steps):
        p = origin + t[..., None] * dirs  # (B, M, 3)
        d = shapes.sdf(p)
        hit = hit | (d < 1e-3)
        t = torch.where(hit, t, t + 0.95 * d.clamp_min(2e-4))
    hit = hit & (t < t_far)
    p = origin + t[..., None] * dirs
    nrm = shapes.normals(p)
    light = torch.tensor(LIGHT, device=dev)
    light = light / light.norm()
    lam = (nrm @ light).clamp_min(0)
    view = (-dirs * nrm).sum(-1).clamp_min(0)
    shade = 0.28 + 0.62 * lam + 0.10 * view
    albedo = torch.tensor(ALBEDO, device=dev)
    a = hit.float()
    rgb = shade[..., None] * albedo * a[..., None] + (1 - a[..., None])  # white background
    img = torch.cat([rgb, a[..., None]], -1).view(b, n, n, 4).permute(0, 3, 1, 2)
    if ss > 1:
        img = F.avg_pool2d(img, ss)
    return img.clamp(0, 1)


def to_model_input(rgba: Tensor) -> Tensor:
    """(B, 4, H, W) in [0, 1] (RGB already on white) -> (B, 3, H, W) in [-1, 1]."""
    return rgba[:, :3] * 2 - 1


def to_pil(rgba: Tensor):
    """One (4, H, W) render (or a batch of one) -> PIL RGBA image."""
    from PIL import Image

    if rgba.ndim == 4:
        rgba = rgba[0]
    a = rgba[3:].clamp(0, 1)
    straight = torch.where(a > 0, (rgba[:3] - (1 - a)) / a.clamp_min(1e-6), torch.ones_like(rgba[:3]))
    rgba = torch.cat([straight, a])  # straight (not premultiplied) colour: compositing on white restores it
    arr = (rgba.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(arr, "RGBA")
