"""Helpers for notebook 04 and demos: official weights if present, an example image (mesh pictures:
:mod:`flowlab.teach.shape_figures`)."""
from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from ..shape.load.checkpoint import MODELS_ENV, DEFAULT_MODELS_DIR, weight_file

__all__ = ["WEIGHTS_ENV", "IMAGE_ENV", "find_official_weights", "example_image",
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


def scale_noise_as_released(sample: Tensor, noise: Tensor, sigma: Tensor | float) -> Tensor:
    """The img2img noising that Hunyuan3D-2's reversed scheduler kept from diffusers, unchanged:

    ``sigma * noise + (1 - sigma) * sample``: the CONVENTIONAL interpolant (sigma = 1 is noise),
    although in that scheduler's own (reversed) time t = 0 is noise. Feeding it a reversed ``t``
    mixes the wrong way: ``scale_noise(t) == REVERSED.interpolate(sample, noise, 1 - t)``.
    Kept here to demonstrate the quirk; use ``REVERSED.interpolate(D, E, t)`` to noise data.
    """
    return sigma * noise + (1.0 - sigma) * sample
