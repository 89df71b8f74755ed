"""A small image encoder in place of DINOv2: a patch transformer trained jointly with the mini DiT.

``PatchImageEncoder``: (B, 3, S, S) in [-1, 1] (RGB on white) -> conv patch embedding (patch p),
a learned CLS token first, learned position embeddings, ``layers`` pre-LN self-attention blocks
(flowlab's VAE blocks), a final LayerNorm -> tokens (B, 1 + (S / p)^2, width). Like DINOv2's last
hidden state it goes to the DiT's ``cond_in``; the unconditional branch is zeros of that shape.

:class:`PatchConditioner` wraps it with the release's conditioner layout (``main_image_encoder.*``
keys, ``conditioner.`` prefix in the checkpoint) and reads images as the mini model was trained:
no recentring (the mini model is trained on a fixed camera, so framing and size carry meaning);
transparent pixels composited on white, the image padded to a square with white, resized to S.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..._optional import require
from ...errors import FlowlabError
from .vae import Transformer

__all__ = ["PatchImageEncoder", "PatchConditioner", "load_mini_image", "MIN_IMAGE_SIZE"]

#: The smallest image side flowlab accepts for the mini model.
MIN_IMAGE_SIZE = 16


class PatchImageEncoder(nn.Module):
    def __init__(self, image_size: int = 64, patch_size: int = 8, width: int = 128, layers: int = 4,
                 heads: int = 4) -> None:
        super().__init__()
        if image_size % patch_size:
            raise FlowlabError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.image_size, self.patch_size, self.width = image_size, patch_size, width
        n = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, width, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, width) * 0.02)
        self.transformer = Transformer(width, layers, heads, qkv_bias=True, qk_norm=True)
        self.ln_post = nn.LayerNorm(width)

    @property
    def num_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1

    def forward(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, num_tokens, width); resized to image_size when needed."""
        if image.shape[-1] != self.image_size or image.shape[-2] != self.image_size:
            image = F.interpolate(image.float(), size=(self.image_size, self.image_size), mode="bilinear",
                                  align_corners=False, antialias=True)
        p = self.patch_embed.weight
        x = self.patch_embed(image.to(p.dtype)).flatten(2).transpose(1, 2)  # (B, n, W)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1) + self.pos_embed.to(x.dtype)
        return self.ln_post(self.transformer(x))


class PatchConditioner(nn.Module):
    """'SingleImageEncoder' layout around :class:`PatchImageEncoder` (config type 'PatchImageEncoder')."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.main_image_encoder = PatchImageEncoder(**kwargs)
        self.view_num = None
        self.kwargs = dict(kwargs)

    @classmethod
    def from_config(cls, section: dict) -> "PatchConditioner":
        enc = (section.get("params") or {}).get("main_image_encoder") or {}
        kw = dict(enc.get("kwargs") or {})
        allowed = {"image_size", "patch_size", "width", "layers", "heads"}
        unknown = sorted(set(kw) - allowed)
        if unknown:
            raise FlowlabError(f"PatchImageEncoder kwargs has keys flowlab does not know: {unknown}")
        return cls(**{k: int(v) for k, v in kw.items()})

    def config_section(self) -> dict:
        return {"target": "flowlab.shape.models.image_encoder.SingleImageEncoder",
                "params": {"main_image_encoder": {"type": "PatchImageEncoder", "kwargs": dict(self.kwargs)}}}

    @property
    def num_tokens(self) -> int:
        return self.main_image_encoder.num_tokens

    def load_checkpoint_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        return dict(state)

    def forward(self, image: Tensor, view_idxs=None) -> Tensor:
        return self.main_image_encoder(image)

    def unconditional(self, batch: int) -> Tensor:
        p = next(self.parameters())
        return torch.zeros(batch, self.num_tokens, self.main_image_encoder.width, device=p.device, dtype=p.dtype)

    def load_image(self, image) -> Tensor:
        return load_mini_image(image, self.main_image_encoder.image_size)


def load_mini_image(image: "str | os.PathLike | object", size: int = 64) -> Tensor:
    """A path or PIL image -> (1, 3, size, size) float32 in [-1, 1]: on white, padded square, resized.

    FlowlabError for a missing / unreadable / empty file, an image smaller than MIN_IMAGE_SIZE
    pixels, or one with nothing on it (fully transparent, or uniformly one colour).
    Grayscale (L, LA), palette and RGB(A) images are converted.
    """
    from .conditioner import as_pil_image

    Image = require("PIL.Image", "reading an image")
    img = as_pil_image(image)
    w, h = img.size
    if min(w, h) < MIN_IMAGE_SIZE:
        raise FlowlabError(f"image is {w}x{h} pixels; the mini model needs at least {MIN_IMAGE_SIZE}x"
                           f"{MIN_IMAGE_SIZE} (it reads {size}x{size}); give a larger picture of the object")
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "PA", "1", "I;16", "I", "F"):
        raise FlowlabError(f"image mode {img.mode!r} is not supported; convert it to an 8-bit RGB or RGBA PNG")
    if img.mode in ("I;16", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        span = arr.max() - arr.min()
        img = Image.fromarray(((arr - arr.min()) / (span if span > 0 else 1) * 255).astype(np.uint8), "L")
    rgba = np.asarray(img.convert("RGBA")).astype(np.float32) / 255
    alpha = rgba[..., 3:]
    rgb = rgba[..., :3] * alpha + (1 - alpha)  # on white
    if alpha.max() == 0 or float(np.ptp(rgb)) < 1e-3:
        raise FlowlabError("the image is empty: nothing but one colour (or fully transparent); give a picture "
                           "of an object, e.g. flowlab.shape.data.render.to_pil(render(primitive('torus')))")
    side = max(w, h)
    canvas = np.ones((side, side, 3), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top:top + h, left:left + w] = rgb
    t = torch.from_numpy(canvas).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (t * 2 - 1).clamp(-1, 1)
