"""Image conditioning: the reference's preprocessing and DINOv2-giant (transformers' Dinov2Model).

``cond = encoder(image)``: ``image (B, 3, H, W)`` in [-1, 1] (white background) ->
``(B, 1 + (518 / 14)^2, 1536) = (B, 1370, 1536)``: the last hidden state, CLS token first.
The unconditional branch of CFG is **zeros** of that shape, not a learned token.

Preprocessing (:func:`load_image`, after hy3dgen's ImageProcessorV2): recentre the object on its
alpha mask so it fills ``1 - border_ratio`` (85%) of a square canvas, composite on white, resize
to 512 px, scale to [-1, 1]. The encoder then resizes the short side to 518 px (bilinear,
antialiased), centre-crops 518 and applies ImageNet normalisation. flowlab resizes with Pillow
where the reference uses OpenCV (INTER_AREA, INTER_CUBIC): pixels can differ by a few levels.

transformers 5.x renamed Dinov2's parameters (``attention.attention.{query,key,value}`` ->
``attention.{q,k,v}_proj``, ``attention.output.dense`` -> ``attention.o_proj``, the fused SwiGLU
``mlp.weights_in`` -> ``mlp.{gate,up}_proj``, ``mlp.weights_out`` -> ``mlp.down_proj``) and converts
only inside ``from_pretrained``. :func:`convert_dinov2_keys` maps a checkpoint either way to match
the installed transformers.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..._optional import require
from ...errors import FlowlabError

__all__ = ["ImageConditioner", "load_image", "recenter", "convert_dinov2_keys", "multiview_embedding",
           "IMAGENET_MEAN", "IMAGENET_STD", "SUPPORTED_MODES"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Pillow modes :func:`load_image` accepts (converted to RGBA; no alpha means the whole image is the object).
SUPPORTED_MODES = ("RGB", "RGBA", "L", "LA", "P", "PA", "RGBa", "La")

_V4_TO_V5 = (
    ("attention.attention.query.", "attention.q_proj."),
    ("attention.attention.key.", "attention.k_proj."),
    ("attention.attention.value.", "attention.v_proj."),
    ("attention.output.dense.", "attention.o_proj."),
    ("mlp.weights_out.", "mlp.down_proj."),
)


def convert_dinov2_keys(state: dict[str, Tensor], target_keys: set[str]) -> dict[str, Tensor]:
    """Rename a Dinov2 state dict between transformers 4.x and 5.x names to match ``target_keys``.

    The fused SwiGLU input ``mlp.weights_in`` (4.x) is ``cat(gate, up)`` along dim 0.
    """
    wants_v5 = any(".attention.q_proj." in k for k in target_keys)
    has_v4 = any(".attention.attention.query." in k for k in state)
    has_v5 = any(".attention.q_proj." in k for k in state)
    out: dict[str, Tensor] = {}
    if wants_v5 and has_v4:
        for k, v in state.items():
            if ".mlp.weights_in." in k:
                gate, up = v.chunk(2, dim=0)
                out[k.replace(".mlp.weights_in.", ".mlp.gate_proj.")] = gate
                out[k.replace(".mlp.weights_in.", ".mlp.up_proj.")] = up
                continue
            for old, new in _V4_TO_V5:
                k = k.replace(old, new)
            out[k] = v
        return out
    if not wants_v5 and has_v5:
        pending: dict[str, dict[str, Tensor]] = {}
        for k, v in state.items():
            if ".mlp.gate_proj." in k or ".mlp.up_proj." in k:
                fused = k.replace(".mlp.gate_proj.", ".mlp.weights_in.").replace(".mlp.up_proj.", ".mlp.weights_in.")
                pending.setdefault(fused, {})["gate" if ".gate_proj." in k else "up"] = v
                continue
            for old, new in _V4_TO_V5:
                k = k.replace(new, old)
            out[k] = v
        for k, parts in pending.items():
            out[k] = torch.cat([parts["gate"], parts["up"]], dim=0)
        return out
    return dict(state)


def multiview_embedding(hidden: int, views: int = 4) -> Tensor:
    """Fixed sinusoidal view embedding (views, hidden): [sin, cos] of view index * 1/10000^(2i/hidden)."""
    omega = 1.0 / 10000 ** (np.arange(hidden // 2, dtype=np.float64) / (hidden / 2.0))
    out = np.arange(views, dtype=np.float64)[:, None] * omega[None]
    return torch.from_numpy(np.concatenate([np.sin(out), np.cos(out)], axis=1)).float()


class DinoImageEncoder(nn.Module):
    """Holds ``model`` = transformers Dinov2Model built from a config dict (no download)."""

    def __init__(self, config: dict, image_size: int = 518, use_cls_token: bool = True) -> None:
        super().__init__()
        transformers = require("transformers", "the image conditioner (DINOv2; or pass a precomputed embedding, "
                                               "sample_latents(cond=...))")
        Dinov2Config, Dinov2Model = transformers.Dinov2Config, transformers.Dinov2Model
        cfg = {k: v for k, v in config.items() if k not in ("torch_dtype", "dtype")}
        self.model = Dinov2Model(Dinov2Config(**cfg))
        self.model.eval()
        self.model.requires_grad_(False)
        self.image_size = image_size
        self.use_cls_token = use_cls_token
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def num_tokens(self) -> int:
        return (self.image_size // 14) ** 2 + (1 if self.use_cls_token else 0)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def transform(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> resize short side to image_size (bilinear, antialias), centre crop, normalise."""
        h, w = image.shape[-2:]
        s = self.image_size
        if h <= w:
            size = (s, int(s * w / h))
        else:
            size = (int(s * h / w), s)
        if size != (h, w):
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
        h, w = image.shape[-2:]
        top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
        image = image[..., top:top + s, left:left + s]
        return (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)

    def forward(self, image: Tensor) -> Tensor:
        """image: (B, 3, H, W) in [-1, 1] -> (B, num_tokens, hidden)."""
        p = next(self.model.parameters())
        # resize in float32 (CPU has no fp16 antialiased resize), then the model's dtype
        image = ((image.float() + 1) / 2).to(device=p.device)
        hidden = self.model(pixel_values=self.transform(image).to(p.dtype)).last_hidden_state
        return hidden if self.use_cls_token else hidden[:, 1:]


class ImageConditioner(nn.Module):
    """The 'SingleImageEncoder' of the release: ``main_image_encoder`` is a :class:`DinoImageEncoder`.

    State-dict keys match the checkpoint's ``conditioner.`` section (``main_image_encoder.model.*``).
    With ``view_num`` set (the multiview 'DinoImageEncoderMV'), ``forward`` takes (B, V, 3, H, W)
    views in the order front, left, back, right, adds the fixed view embedding and concatenates.
    """

    def __init__(self, dino_config: dict, image_size: int = 518, use_cls_token: bool = True,
                 view_num: int | None = None) -> None:
        super().__init__()
        self.main_image_encoder = DinoImageEncoder(dino_config, image_size, use_cls_token)
        self.view_num = view_num

    @classmethod
    def from_config(cls, section: dict) -> "ImageConditioner":
        """Build from config.yaml's ``conditioner`` section."""
        enc = (section.get("params") or {}).get("main_image_encoder") or {}
        kind = enc.get("type", "DinoImageEncoder")
        if kind == "PatchImageEncoder":  # flowlab's mini model (flowlab.shape.models.image_encoder)
            from .image_encoder import PatchConditioner

            return PatchConditioner.from_config(section)
        if kind not in ("DinoImageEncoder", "DinoImageEncoderMV"):
            raise FlowlabError(f"conditioner image encoder type {kind!r} is not supported (DinoImageEncoder, "
                               f"DinoImageEncoderMV, PatchImageEncoder)")
        kw = enc.get("kwargs") or {}
        if "config" not in kw:
            raise FlowlabError("conditioner section has no Dinov2 'config': flowlab builds DINOv2 from the config "
                               "in config.yaml and never downloads it; use a released config.yaml")
        return cls(kw["config"], int(kw.get("image_size", 518)), bool(kw.get("use_cls_token", True)),
                   int(kw.get("view_num", 4)) if kind == "DinoImageEncoderMV" else None)

    @property
    def num_tokens(self) -> int:
        return self.main_image_encoder.num_tokens * (self.view_num or 1)

    def load_checkpoint_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Rename Dinov2 keys of a checkpoint section to the installed transformers' names."""
        return convert_dinov2_keys(state, set(self.state_dict().keys()))

    def forward(self, image: Tensor, view_idxs: list[int] | None = None) -> Tensor:
        """(B, 3, H, W) -> (B, L, C); multiview (B, V, 3, H, W) -> (B, V L, C) with view embeddings
        of ``view_idxs`` (default 0..V-1)."""
        enc = self.main_image_encoder
        if self.view_num is None:
            return enc(image)
        b, v = image.shape[:2]
        hidden = enc(image.flatten(0, 1)).view(b, v, enc.num_tokens, -1)
        idx = list(range(v)) if view_idxs is None else list(view_idxs)
        hidden = hidden + multiview_embedding(enc.hidden_size, self.view_num)[idx][:, None].to(hidden)
        return hidden.reshape(b, v * enc.num_tokens, -1)

    def unconditional(self, batch: int) -> Tensor:
        """Zeros (batch, num_tokens, hidden): the reference's unconditional embedding."""
        p = next(self.parameters())
        return torch.zeros(batch, self.num_tokens, self.main_image_encoder.hidden_size, device=p.device, dtype=p.dtype)


def recenter(rgba: np.ndarray, border_ratio: float = 0.15) -> np.ndarray:
    """(H, W, 4) uint8 -> (S, S, 3) uint8, S = max(H, W): object fills 1 - border_ratio, white background."""
    Image = require("PIL.Image", "reading an image")

    mask = rgba[..., 3]
    size = max(rgba.shape[:2])
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise FlowlabError("the image is empty: its alpha channel is zero everywhere; give an image of an object "
                           "(RGBA with the background transparent, or RGB)")
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    h, w = y1 - y0, x1 - x0
    if h == 0 or w == 0:
        raise FlowlabError("the image's object is a single line of pixels; give an image of an object")
    desired = int(size * (1 - border_ratio))
    scale = desired / max(h, w)
    h2, w2 = int(h * scale), int(w * scale)
    crop = Image.fromarray(np.ascontiguousarray(rgba[y0:y1, x0:x1]), "RGBA")
    crop = crop.resize((w2, h2), Image.BOX if scale < 1 else Image.BILINEAR)
    canvas = np.zeros((size, size, 4), np.uint8)
    top, left = (size - h2) // 2, (size - w2) // 2
    canvas[top:top + h2, left:left + w2] = np.asarray(crop)
    alpha = canvas[..., 3:].astype(np.float32) / 255
    rgb = canvas[..., :3] * alpha + 255 * (1 - alpha)
    return rgb.clip(0, 255).astype(np.uint8)


#: Largest image side flowlab reads (the square canvas the object is recentred on is side x side RGBA).
MAX_IMAGE_SIDE = 8192
#: Largest image flowlab decodes, in pixels (an 8-bit RGBA image of this size is 160 MiB).
MAX_IMAGE_PIXELS = 40_000_000


def check_image_size(w: int, h: int, what: str) -> None:
    """Refuse an image whose decoded pixels or square canvas would not fit the bounds above (from its header)."""
    if max(w, h) > MAX_IMAGE_SIDE or w * h > MAX_IMAGE_PIXELS:
        canvas = max(w, h) ** 2 * 4
        raise FlowlabError(f"{what} is {w}x{h} pixels: decoding it and padding it to a {max(w, h)}x{max(w, h)} square "
                           f"canvas would take about {canvas / 2 ** 30:.1f} GiB; flowlab reads images up to "
                           f"{MAX_IMAGE_SIDE} pixels a side and {MAX_IMAGE_PIXELS / 1e6:.0f} Mpx (the model sees "
                           "512x512): resize it first")


def open_image(path: Path):
    """Read an image file: its header first (size bounded by :func:`check_image_size`), then its pixels."""
    from PIL import Image, UnidentifiedImageError

    what = f"image {str(path)!r}"
    try:
        with Image.open(path) as im:
            check_image_size(*im.size, what)
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, FlowlabError):
            raise
        kind = ": not an image" if isinstance(e, UnidentifiedImageError) else ""  # e.g. a text file
        raise FlowlabError(f"cannot read {what}{kind} ({type(e).__name__}: {e}); give a PNG or JPEG file") from None


def as_pil_image(image: "str | os.PathLike | object") -> "object":
    """A path (checked: a file, not empty, bounded from its header) or a PIL image (size bounded) -> the PIL image.

    The one place both image encoders (DINOv2's here, the mini model's patch encoder) turn their input into pixels.
    """
    Image = require("PIL.Image", "reading an image")

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if path.is_dir():
            raise FlowlabError(f"image {str(path)!r} is a directory; pass one image file (PNG or JPEG)")
        if not path.is_file():
            raise FlowlabError(f"image {str(path)!r} not found")
        if path.stat().st_size == 0:
            raise FlowlabError(f"image {str(path)!r} is an empty file (0 bytes); give a PNG or JPEG image")
        return open_image(path)
    if isinstance(image, Image.Image):
        check_image_size(*image.size, "the image")
        return image
    raise FlowlabError(f"expected an image path or a PIL image, got {type(image).__name__}")


def load_image(image: "str | os.PathLike | object", size: int = 512, border_ratio: float = 0.15) -> Tensor:
    """A path or PIL image -> (1, 3, size, size) float32 in [-1, 1] (recentred, white background).

    Raises FlowlabError for an unreadable file or an unsupported mode.
    """
    Image = require("PIL.Image", "reading an image")

    img = as_pil_image(image)
    if img.mode not in SUPPORTED_MODES:
        raise FlowlabError(f"image mode {img.mode!r} is not supported (supported: {', '.join(SUPPORTED_MODES)}); "
                           f"convert it to an 8-bit RGB or RGBA PNG")
    rgb = recenter(np.asarray(img.convert("RGBA")), border_ratio)
    rgb = np.asarray(Image.fromarray(rgb, "RGB").resize((size, size), Image.BICUBIC))
    t = torch.from_numpy(rgb.copy()).float() / 255 * 2 - 1  # (H, W, 3)
    return t.permute(2, 0, 1)[None]
