"""Hunyuan3D-2's ShapeVAE decoder ('ShapeVAE', decoder only in the 2.0 release).

The DiT's output latents ``z: (B, N, 64)`` are divided by ``scale_factor`` and decoded in two parts:

1. :meth:`ShapeVAE.forward`: ``post_kl`` Linear(64 -> width) then a transformer of pre-LN residual
   self-attention blocks -> latent tokens ``(B, N, width)``; done once per shape.
2. :class:`GeoDecoder`: an occupancy field. A query point ``p in [-1.01, 1.01]^3`` is Fourier
   embedded (``cat(p, sin(p f), cos(p f))``, ``f = 2^0 .. 2^7``, no pi), projected and cross-attends
   to the latent tokens; the output is a logit, **positive = inside**. Its key / value projection
   depends only on the latent tokens: :meth:`GeoDecoder.prepare` computes it once per shape and
   :meth:`GeoDecoder.query` reuses it for every chunk of points (the reference recomputes it per
   chunk; the result is the same).

Unlike the DiT, the VAE's fused qkv projections are viewed per head as (heads, 3 * head_dim)
(interleaved per head), and its QK-norm is a per-head LayerNorm with affine parameters.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["VAEConfig", "ShapeVAE", "GeoDecoder", "FourierEmbedder", "VAE_CONFIGS", "KV"]


@dataclass(frozen=True)
class VAEConfig:
    """Hyper-parameters of :class:`ShapeVAE` (the ``vae.params`` of a released config.yaml)."""

    num_latents: int = 3072
    embed_dim: int = 64
    width: int = 1024
    heads: int = 16
    num_decoder_layers: int = 16
    num_freqs: int = 8
    include_pi: bool = False
    qkv_bias: bool = False
    qk_norm: bool = True
    geo_decoder_downsample_ratio: int = 1
    geo_decoder_mlp_expand_ratio: int = 4
    geo_decoder_ln_post: bool = True
    scale_factor: float = 0.9990943042622529
    label_type: str = "binary"

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.label_type != "binary":
            raise ValueError(f"label_type {self.label_type!r} is not supported (only 'binary')")

    def as_dict(self) -> dict:
        return asdict(self)


#: The released VAE configurations.
VAE_CONFIGS: dict[str, VAEConfig] = {
    "v2-0": VAEConfig(),
    "v2-0-turbo": VAEConfig(geo_decoder_downsample_ratio=2, geo_decoder_mlp_expand_ratio=1,
                            geo_decoder_ln_post=False),
    "v2-mini": VAEConfig(num_latents=512, scale_factor=1.0188137142395404),
    "v2-mini-turbo": VAEConfig(num_latents=512, scale_factor=1.0188137142395404, geo_decoder_downsample_ratio=2,
                               geo_decoder_mlp_expand_ratio=1, geo_decoder_ln_post=False),
}


class FourierEmbedder(nn.Module):
    """``cat(x, sin(x f), cos(x f))`` with ``f = 2^0 .. 2^(num_freqs - 1)`` (times pi if include_pi).

    x: (..., 3) -> (..., 3 * (2 num_freqs + 1)); the sin/cos features are ordered input-dim major.
    """

    def __init__(self, num_freqs: int = 8, include_pi: bool = False, input_dim: int = 3) -> None:
        super().__init__()
        freqs = 2.0 ** torch.arange(num_freqs, dtype=torch.float32)
        if include_pi:
            freqs = freqs * torch.pi
        self.register_buffer("frequencies", freqs, persistent=False)
        self.include_pi = include_pi
        self.out_dim = input_dim * (2 * num_freqs + 1)

    def forward(self, x: Tensor) -> Tensor:
        emb = (x[..., None] * self.frequencies.to(x.dtype)).reshape(*x.shape[:-1], -1)  # (..., 3 F)
        return torch.cat((x, emb.sin(), emb.cos()), dim=-1)


class MLP(nn.Module):
    """``c_proj(gelu(c_fc(x)))`` with exact GELU."""

    def __init__(self, width: int, expand_ratio: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, width * expand_ratio)
        self.c_proj = nn.Linear(width * expand_ratio, width)
        self.gelu = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


def _head_norm(head_dim: int, on: bool) -> nn.Module:
    return nn.LayerNorm(head_dim, elementwise_affine=True, eps=1e-6) if on else nn.Identity()


class QKVMultiheadAttention(nn.Module):
    """Holds the per-head LayerNorms of q and k (key names ``attention.q_norm`` / ``k_norm``)."""

    def __init__(self, heads: int, width: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.q_norm = _head_norm(width // heads, qk_norm)
        self.k_norm = _head_norm(width // heads, qk_norm)

    def forward(self, qkv: Tensor) -> Tensor:
        """qkv: (B, N, 3 W) viewed as (B, N, H, 3 D), split per head -> (B, N, W)."""
        b, n, w3 = qkv.shape
        d = w3 // self.heads // 3
        q, k, v = qkv.view(b, n, self.heads, 3 * d).split(d, dim=-1)  # (B, N, H, D) each
        q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2).reshape(b, n, -1)


class MultiheadAttention(nn.Module):
    def __init__(self, width: int, heads: int, qkv_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.c_qkv = nn.Linear(width, width * 3, bias=qkv_bias)
        self.c_proj = nn.Linear(width, width)
        self.attention = QKVMultiheadAttention(heads, width, qk_norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.attention(self.c_qkv(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN self-attention block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, width: int, heads: int, qkv_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.attn = MultiheadAttention(width, heads, qkv_bias, qk_norm)
        self.ln_1 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = MLP(width, 4)
        self.ln_2 = nn.LayerNorm(width, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, qkv_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, qkv_bias, qk_norm) for _ in range(layers)])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class QKVMultiheadCrossAttention(nn.Module):
    """Per-head LayerNorms for the cross-attention (key names ``attention.q_norm`` / ``k_norm``)."""

    def __init__(self, heads: int, width: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.q_norm = _head_norm(width // heads, qk_norm)
        self.k_norm = _head_norm(width // heads, qk_norm)


class MultiheadCrossAttention(nn.Module):
    def __init__(self, width: int, heads: int, qkv_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.c_q = nn.Linear(width, width, bias=qkv_bias)
        self.c_kv = nn.Linear(width, width * 2, bias=qkv_bias)
        self.c_proj = nn.Linear(width, width)
        self.attention = QKVMultiheadCrossAttention(heads, width, qk_norm)


class ResidualCrossAttentionBlock(nn.Module):
    """``x + attn(ln_1(x), ln_2(latents))``, then ``x + mlp(ln_3(x))``."""

    def __init__(self, width: int, heads: int, mlp_expand_ratio: int, qkv_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.attn = MultiheadCrossAttention(width, heads, qkv_bias, qk_norm)
        self.ln_1 = nn.LayerNorm(width, eps=1e-6)
        self.ln_2 = nn.LayerNorm(width, eps=1e-6)
        self.ln_3 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = MLP(width, mlp_expand_ratio)


@dataclass
class KV:
    """The latent tokens' keys and values for the geometry decoder: each (B, H, N, D)."""

    k: Tensor
    v: Tensor


class GeoDecoder(nn.Module):
    """Occupancy logits of query points given decoded latent tokens ('CrossAttentionDecoder')."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        c = config
        r = c.geo_decoder_downsample_ratio
        self.width = c.width // r
        self.heads = c.heads // r
        self.fourier_embedder = FourierEmbedder(c.num_freqs, c.include_pi)
        self.query_proj = nn.Linear(self.fourier_embedder.out_dim, self.width)
        if r != 1:
            self.latents_proj = nn.Linear(c.width, self.width)
        # Without ln_post (the turbo decoder) the reference also builds the block without QK-norm.
        qk_norm = c.qk_norm and c.geo_decoder_ln_post
        self.cross_attn_decoder = ResidualCrossAttentionBlock(self.width, self.heads, c.geo_decoder_mlp_expand_ratio,
                                                              c.qkv_bias, qk_norm)
        if c.geo_decoder_ln_post:
            self.ln_post = nn.LayerNorm(self.width)
        self.output_proj = nn.Linear(self.width, 1)
        self.has_latents_proj = r != 1
        self.has_ln_post = c.geo_decoder_ln_post

    def prepare(self, latents: Tensor) -> KV:
        """Key / value of the decoded latent tokens, once per shape. latents: (B, N, width_vae)."""
        if self.has_latents_proj:
            latents = self.latents_proj(latents)
        block = self.cross_attn_decoder
        kv = block.attn.c_kv(block.ln_2(latents))  # (B, N, 2 W)
        b, n, _ = kv.shape
        k, v = kv.view(b, n, self.heads, -1).chunk(2, dim=-1)  # (B, N, H, D) each: split per head
        k = block.attn.attention.k_norm(k)
        return KV(k=k.transpose(1, 2), v=v.transpose(1, 2))

    def query(self, points: Tensor, kv: KV) -> Tensor:
        """points: (B, P, 3) or (P, 3) in the latents' box -> logits (B, P), positive = inside."""
        if points.ndim == 2:
            points = points[None].expand(kv.k.shape[0], -1, -1)
        block = self.cross_attn_decoder
        x = self.query_proj(self.fourier_embedder(points.to(kv.k.dtype)))  # (B, P, W)
        q = block.attn.c_q(block.ln_1(x))
        b, p, _ = q.shape
        q = block.attn.attention.q_norm(q.view(b, p, self.heads, -1)).transpose(1, 2)  # (B, H, P, D)
        a = F.scaled_dot_product_attention(q, kv.k, kv.v).transpose(1, 2).reshape(b, p, -1)
        x = x + block.attn.c_proj(a)
        x = x + block.mlp(block.ln_3(x))
        if self.has_ln_post:
            x = self.ln_post(x)
        return self.output_proj(x)[..., 0]

    def forward(self, points: Tensor, latents: Tensor) -> Tensor:
        """One-shot decode: points (B, P, 3), latents (B, N, width_vae) -> logits (B, P)."""
        return self.query(points, self.prepare(latents))


class ShapeVAE(nn.Module):
    """Decoder half of Hunyuan3D-2's ShapeVAE. ``forward(z)``: (B, N, 64) -> (B, N, width).

    ``z`` is the DiT's output divided by ``config.scale_factor`` (see :meth:`decode_latents`).
    """

    def __init__(self, config: VAEConfig = VAEConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.post_kl = nn.Linear(c.embed_dim, c.width)
        self.transformer = Transformer(c.width, c.num_decoder_layers, c.heads, c.qkv_bias, c.qk_norm)
        self.geo_decoder = GeoDecoder(c)

    @property
    def latent_shape(self) -> tuple[int, int]:
        return (self.config.num_latents, self.config.embed_dim)

    def forward(self, z: Tensor) -> Tensor:
        return self.transformer(self.post_kl(z))

    def decode_latents(self, latents: Tensor) -> Tensor:
        """DiT latents (B, N, 64) -> decoded tokens (B, N, width): ``forward((1 / scale_factor) * latents)``.

        Multiplies by the reciprocal, as the reference does (bitwise parity in fp16).
        """
        return self((1.0 / self.config.scale_factor) * latents)
