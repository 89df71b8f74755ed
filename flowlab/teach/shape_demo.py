"""Helpers for notebook 04 and demos: official weights if present, an example image, a mesh picture."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import Tensor

from ..shape.load.checkpoint import MODELS_ENV, DEFAULT_MODELS_DIR, weight_file
from ..shape.decode.mesh import Mesh

__all__ = ["WEIGHTS_ENV", "IMAGE_ENV", "find_official_weights", "example_image", "plot_mesh",
           "scale_noise_as_released"]

#: A folder with an official DiT checkpoint (config.yaml + model.fp16.safetensors), e.g.
#: ~/.cache/hy3dgen/tencent/Hunyuan3D-2/hunyuan3d-dit-v2-0. Notebook 04 uses it when set.
WEIGHTS_ENV = "FLOWLAB_HY3DGEN_WEIGHTS"
#: An input image for the real-weights demo (default: :func:`example_image`).
IMAGE_ENV = "FLOWLAB_HY3DGEN_IMAGE"


def find_official_weights() -> Path | None:
    """``$FLOWLAB_HY3DGEN_WEIGHTS``, else ``$HY3DGEN_MODELS/tencent/Hunyuan3D-2/hunyuan3d-dit-v2-0``, if it has weights."""
    candidates = []
    if os.environ.get(WEIGHTS_ENV):
        candidates.append(Path(os.environ[WEIGHTS_ENV]).expanduser())
    if os.environ.get(MODELS_ENV):
        candidates.append(Path(os.environ.get(MODELS_ENV, DEFAULT_MODELS_DIR)).expanduser()
                          / "tencent" / "Hunyuan3D-2" / "hunyuan3d-dit-v2-0")
    for c in candidates:
        if (c / "config.yaml").is_file() and weight_file(c) is not None:
            return c
    return None


def example_image(size: int = 256):
    """A deterministic RGBA picture of a simple object (a mushroom: cap and stem) on a transparent background."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s = size / 256
    d.rectangle([108 * s, 120 * s, 148 * s, 220 * s], fill=(235, 225, 200, 255))
    d.pieslice([48 * s, 50 * s, 208 * s, 190 * s], 180, 360, fill=(200, 40, 40, 255))
    for cx, cy, r in ((95, 95, 10), (130, 75, 12), (165, 100, 9)):
        d.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=(250, 250, 250, 255))
    return img


def plot_mesh(mesh: Mesh, ax=None, *, title: str | None = None, elev: float = 20.0, azim: float = -60.0,
              color=(0.55, 0.65, 0.85)):
    """A static, Lambert-shaded picture of ``mesh`` on a 3D matplotlib axis; returns the axis.

    The reference's meshes are y-up (x right, y up, z towards the viewer): the plot puts y on the
    vertical axis.
    """
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    if ax is None:
        ax = plt.figure(figsize=(4, 4)).add_subplot(projection="3d")
    v = mesh.vertices[:, [0, 2, 1]]  # (x, z, y): y up on the plot
    tri = v[mesh.faces]  # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = np.array([0.4, -0.6, 0.7])
    shade = 0.35 + 0.65 * np.clip(-n @ (light / np.linalg.norm(light)), 0, 1)
    faces = np.clip(np.outer(shade, color), 0, 1)
    ax.add_collection3d(Poly3DCollection(tri, facecolors=faces, edgecolors="none"))
    lo, hi = v.min(0), v.max(0)
    c, r = (lo + hi) / 2, (hi - lo).max() / 2
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_zlim(c[2] - r, c[2] + r)
    ax.view_init(elev=elev, azim=azim)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def scale_noise_as_released(sample: Tensor, noise: Tensor, sigma: Tensor | float) -> Tensor:
    """The img2img noising that Hunyuan3D-2's reversed scheduler kept from diffusers, unchanged:

    ``sigma * noise + (1 - sigma) * sample``: the CONVENTIONAL interpolant (sigma = 1 is noise),
    although in that scheduler's own (reversed) time t = 0 is noise. Feeding it a reversed ``t``
    mixes the wrong way: ``scale_noise(t) == REVERSED.interpolate(sample, noise, 1 - t)``.
    Kept here to demonstrate the quirk; use ``REVERSED.interpolate(D, E, t)`` to noise data.
    """
    return sigma * noise + (1.0 - sigma) * sample
