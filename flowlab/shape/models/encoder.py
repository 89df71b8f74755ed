"""The ShapeVAE encoder (the half Hunyuan3D-2 trains with but does not release), flowlab's own code.

After Hunyuan3D-2.1's point cross-attention encoder (hy3dshape ``PointCrossAttentionEncoder``):

1. each surface point ``p`` with its normal ``n`` becomes ``cat(fourier(p), n)`` (the decoder's
   Fourier features: ``cat(p, sin(p f), cos(p f))``), projected to ``width`` (``input_proj``);
2. ``num_latents`` of the points are picked by farthest-point sampling (FPS); their features are the
   queries of one residual cross-attention block over all points' features;
3. ``num_encoder_layers`` self-attention blocks, ``ln_post``, then ``pre_kl`` Linear(width -> 2 * embed_dim)
   gives the mean and log-variance of a diagonal Gaussian over the latents (B, num_latents, embed_dim).

The decoder (:class:`flowlab.shape.models.vae.ShapeVAE`) maps a latent sample back to an occupancy field.
Training loss: BCE on occupancy + ``kl_weight`` * KL(q || N(0, I)).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vae import FourierEmbedder, ResidualCrossAttentionBlock, Transformer

__all__ = ["EncoderConfig", "ShapeVAEEncoder", "DiagonalGaussian", "farthest_point_sampling", "cross_attend"]


@dataclass(frozen=True)
class EncoderConfig:
    num_latents: int = 128
    embed_dim: int = 64
    width: int = 256
    heads: int = 4
    num_encoder_layers: int = 1
    num_freqs: int = 8
    include_pi: bool = False
    qkv_bias: bool = False
    qk_norm: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


def farthest_point_sampling(points: Tensor, k: int) -> Tensor:
    """Indices (B, k) of k points of (B, N, 3) picked greedily farthest from those already picked,
    starting at point 0 (deterministic)."""
    b, n, _ = points.shape
    idx = torch.zeros(b, k, dtype=torch.long, device=points.device)
    dist = torch.full((b, n), float("inf"), device=points.device, dtype=points.dtype)
    cur = torch.zeros(b, dtype=torch.long, device=points.device)
    ar = torch.arange(b, device=points.device)
    for i in range(k):
        idx[:, i] = cur
        d = ((points - points[ar, cur][:, None]) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        cur = dist.argmax(dim=1)
    return idx


def cross_attend(block: ResidualCrossAttentionBlock, x: Tensor, data: Tensor) -> Tensor:
    """``x + attn(ln_1(x), ln_2(data))`` then ``+ mlp(ln_3(.))`` with the decoder block's per-head layout."""
    attn = block.attn
    h = attn.heads
    q = attn.c_q(block.ln_1(x))
    kv = attn.c_kv(block.ln_2(data))
    b, nq, _ = q.shape
    nk = kv.shape[1]
    q = attn.attention.q_norm(q.view(b, nq, h, -1))
    k, v = kv.view(b, nk, h, -1).chunk(2, dim=-1)
    k = attn.attention.k_norm(k)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    x = x + attn.c_proj(out.transpose(1, 2).reshape(b, nq, -1))
    return x + block.mlp(block.ln_3(x))


class DiagonalGaussian:
    """mean, logvar (clamped to [-30, 20]) -> sample / mode / KL to N(0, I) (mean over all dims)."""

    def __init__(self, moments: Tensor) -> None:
        self.mean, logvar = moments.float().chunk(2, dim=-1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> Tensor:
        return self.mean

    def kl(self) -> Tensor:
        """(B,) mean over latent entries of KL(N(mean, var) || N(0, 1))."""
        return 0.5 * (self.mean ** 2 + self.logvar.exp() - 1.0 - self.logvar).flatten(1).mean(1)


class ShapeVAEEncoder(nn.Module):
    """Surface points + normals (B, N, 3) each -> :class:`DiagonalGaussian` over (B, num_latents, embed_dim)."""

    def __init__(self, config: EncoderConfig = EncoderConfig()) -> None:
        super().__init__()
        c = self.config = config
        self.fourier_embedder = FourierEmbedder(c.num_freqs, c.include_pi)
        self.input_proj = nn.Linear(self.fourier_embedder.out_dim + 3, c.width)
        self.cross_attn = ResidualCrossAttentionBlock(c.width, c.heads, 4, c.qkv_bias, c.qk_norm)
        self.self_attn = Transformer(c.width, c.num_encoder_layers, c.heads, c.qkv_bias, c.qk_norm)
        self.ln_post = nn.LayerNorm(c.width)
        self.pre_kl = nn.Linear(c.width, 2 * c.embed_dim)

    def forward(self, points: Tensor, normals: Tensor) -> DiagonalGaussian:
        feats = self.input_proj(torch.cat([self.fourier_embedder(points), normals], dim=-1))  # (B, N, W)
        idx = farthest_point_sampling(points.detach(), self.config.num_latents)  # (B, K)
        query = torch.gather(feats, 1, idx[..., None].expand(-1, -1, feats.shape[-1]))
        x = cross_attend(self.cross_attn, query, feats)
        x = self.ln_post(self.self_attn(x))
        return DiagonalGaussian(self.pre_kl(x))
