"""Hunyuan3D-2's shape denoiser: a Flux-style MMDiT over a set of latent tokens.

Conventions (the reversed one, as released): the network is called as ``model(x, t, cond)`` with
``t`` in [0, 1] where **t = 0 is noise and t = 1 is data**, and returns ``v = D - E`` (data minus
noise). Use :func:`flowlab.sampling.flip` to drive it in the conventional direction.

Shapes: ``x: (B, N, 64)`` latent tokens, ``cond: (B, L, 1536)`` image tokens (L = 1370 for
DINOv2-giant at 518 px), ``t: (B,)``. Output ``(B, N, 64)``.

Architecture (the parameter names are the released checkpoints' state-dict keys):

* ``vec = time_in(emb(t))`` (+ ``guidance_in(emb(w))`` for guidance-distilled models) drives
  adaLN modulation ``(1 + scale) * LN(x) + shift`` and gates.
* ``emb`` is sinusoidal of ``t * 1000`` with **max_period 1000** (not 10000), order [cos, sin].
* ``depth`` double-stream blocks (separate weights for the latent 'img' and cond 'txt' streams,
  joint attention over ``cat(cond, latent)``, cond tokens first), then ``depth_single_blocks``
  single-stream blocks on the concatenation, then an adaLN final layer on the latent tokens.
* No positional embedding: the network is permutation-equivariant over latent tokens.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DiTConfig", "ShapeDiT", "timestep_embedding", "DIT_CONFIGS"]


@dataclass(frozen=True)
class DiTConfig:
    """Hyper-parameters of :class:`ShapeDiT` (the ``model.params`` of a released config.yaml)."""

    in_channels: int = 64
    context_in_dim: int = 1536
    hidden_size: int = 1024
    mlp_ratio: float = 4.0
    num_heads: int = 16
    depth: int = 16
    depth_single_blocks: int = 32
    qkv_bias: bool = True
    time_factor: float = 1000.0
    guidance_embed: bool = False

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")

    def as_dict(self) -> dict:
        return asdict(self)


#: The released DiT configurations (see the spec's table). 'fast' and 'turbo' share the
#: guidance-embedded architecture; 'mv' shares v2-0's.
DIT_CONFIGS: dict[str, DiTConfig] = {
    "v2-0": DiTConfig(),
    "v2-0-fast": DiTConfig(guidance_embed=True),
    "v2-0-turbo": DiTConfig(guidance_embed=True),
    "v2-mv": DiTConfig(),
    "v2-mv-fast": DiTConfig(guidance_embed=True),
    "v2-mv-turbo": DiTConfig(guidance_embed=True),
    "v2-mini": DiTConfig(depth=8, depth_single_blocks=16),
    "v2-mini-fast": DiTConfig(depth=8, depth_single_blocks=16, guidance_embed=True),
    "v2-mini-turbo": DiTConfig(depth=8, depth_single_blocks=16, guidance_embed=True),
}


def timestep_embedding(t: Tensor, dim: int = 256, max_period: float = 1000.0,
                       time_factor: float = 1000.0) -> Tensor:
    """Sinusoidal embedding ``[cos(T f_i), sin(T f_i)]`` of ``T = time_factor * t``.

    ``f_i = exp(-ln(max_period) i / (dim / 2))``. Hunyuan3D-2 uses ``max_period = 1000`` (its
    call passes the time factor where the period belongs). ``T`` is computed in ``t``'s own dtype
    (fp16 when the pipeline runs in fp16, a second rounding of t), the product with the
    frequencies in float32; the result is cast back to ``t``'s dtype when ``t`` is floating.

    t: (B,) -> (B, dim)
    """
    t = time_factor * t
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    if torch.is_floating_point(t):
        emb = emb.to(t.dtype)
    return emb


class MLPEmbedder(nn.Module):
    """``out_layer(silu(in_layer(x)))``."""

    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden_dim, bias=True)
        self.silu = nn.SiLU()
        self.out_layer = nn.Linear(hidden_dim, hidden_dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(self.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    """RMSNorm over the last dim, computed in float32, eps 1e-6, learnable ``scale``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-6)
        return x.to(dtype) * self.scale


class QKNorm(nn.Module):
    """Per-head RMSNorm of queries and keys; both are returned in ``v``'s dtype."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.query_norm = RMSNorm(head_dim)
        self.key_norm = RMSNorm(head_dim)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return self.query_norm(q).to(v.dtype), self.key_norm(k).to(v.dtype)


def _split_qkv(qkv: Tensor, num_heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """(B, L, 3 * H * D) laid out as (3, H, D) -> three (B, H, L, D)."""
    b, n, _ = qkv.shape
    qkv = qkv.view(b, n, 3, num_heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, H, L, D)
    return qkv[0], qkv[1], qkv[2]


def _attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """SDPA over (B, H, L, D), merged back to (B, L, H * D)."""
    out = F.scaled_dot_product_attention(q, k, v)  # (B, H, L, D)
    b, h, n, d = out.shape
    return out.transpose(1, 2).reshape(b, n, h * d)


class SelfAttention(nn.Module):
    """qkv projection + QK-norm + output projection (the attention itself is joint, see blocks)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm = QKNorm(dim // num_heads)
        self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, L, C) -> q, k, v: (B, H, L, D), q and k normalised."""
        q, k, v = _split_qkv(self.qkv(x), self.num_heads)
        q, k = self.norm(q, k, v)
        return q, k, v


class Modulation(nn.Module):
    """``lin(silu(vec))`` chunked into (shift, scale, gate) triples: 2 for double, 1 for single."""

    def __init__(self, dim: int, double: bool) -> None:
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim, bias=True)

    def forward(self, vec: Tensor) -> list[Tensor]:
        """vec: (B, C) -> list of (B, 1, C) in the order shift, scale, gate[, shift, scale, gate]."""
        return list(self.lin(F.silu(vec))[:, None, :].chunk(self.multiplier, dim=-1))


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return (1 + scale) * x + shift


def _gelu_mlp(hidden: int, mlp_hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, mlp_hidden, bias=True), nn.GELU(approximate="tanh"),
                         nn.Linear(mlp_hidden, hidden, bias=True))


class DoubleStreamBlock(nn.Module):
    """Separate weights for the latent stream (img) and the cond stream (txt), joint attention."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        mlp_hidden = int(hidden * mlp_ratio)
        self.num_heads = num_heads
        self.img_mod = Modulation(hidden, double=True)
        self.img_norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.img_attn = SelfAttention(hidden, num_heads, qkv_bias)
        self.img_norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.img_mlp = _gelu_mlp(hidden, mlp_hidden)
        self.txt_mod = Modulation(hidden, double=True)
        self.txt_norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.txt_attn = SelfAttention(hidden, num_heads, qkv_bias)
        self.txt_norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.txt_mlp = _gelu_mlp(hidden, mlp_hidden)

    def forward(self, img: Tensor, txt: Tensor, vec: Tensor) -> tuple[Tensor, Tensor]:
        """img: (B, N, C) latents, txt: (B, L, C) cond, vec: (B, C)."""
        i_shift1, i_scale1, i_gate1, i_shift2, i_scale2, i_gate2 = self.img_mod(vec)
        t_shift1, t_scale1, t_gate1, t_shift2, t_scale2, t_gate2 = self.txt_mod(vec)
        iq, ik, iv = self.img_attn.qkv_heads(_modulate(self.img_norm1(img), i_shift1, i_scale1))
        tq, tk, tv = self.txt_attn.qkv_heads(_modulate(self.txt_norm1(txt), t_shift1, t_scale1))
        attn = _attention(torch.cat((tq, iq), dim=2), torch.cat((tk, ik), dim=2),
                          torch.cat((tv, iv), dim=2))  # (B, L + N, C), cond first
        n_txt = txt.shape[1]
        txt_attn, img_attn = attn[:, :n_txt], attn[:, n_txt:]
        img = img + i_gate1 * self.img_attn.proj(img_attn)
        img = img + i_gate2 * self.img_mlp(_modulate(self.img_norm2(img), i_shift2, i_scale2))
        txt = txt + t_gate1 * self.txt_attn.proj(txt_attn)
        txt = txt + t_gate2 * self.txt_mlp(_modulate(self.txt_norm2(txt), t_shift2, t_scale2))
        return img, txt


class SingleStreamBlock(nn.Module):
    """Parallel attention + MLP on ``cat(cond, latent)``: linear1 -> [qkv, mlp], linear2 back."""

    def __init__(self, hidden: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.num_heads = num_heads
        self.mlp_hidden = int(hidden * mlp_ratio)
        self.linear1 = nn.Linear(hidden, hidden * 3 + self.mlp_hidden)
        self.linear2 = nn.Linear(hidden + self.mlp_hidden, hidden)
        self.norm = QKNorm(hidden // num_heads)
        self.pre_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.modulation = Modulation(hidden, double=False)

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        """x: (B, L + N, C), vec: (B, C)."""
        shift, scale, gate = self.modulation(vec)
        qkv, mlp = torch.split(self.linear1(_modulate(self.pre_norm(x), shift, scale)),
                               [3 * self.hidden, self.mlp_hidden], dim=-1)
        q, k, v = _split_qkv(qkv, self.num_heads)
        q, k = self.norm(q, k, v)
        out = self.linear2(torch.cat((_attention(q, k, v), self.mlp_act(mlp)), dim=2))
        return x + gate * out


class LastLayer(nn.Module):
    """adaLN (shift, scale) then Linear(hidden -> out)."""

    def __init__(self, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden, bias=True))

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)  # (B, C) each
        return self.linear(_modulate(self.norm_final(x), shift[:, None, :], scale[:, None, :]))


class ShapeDiT(nn.Module):
    """Hunyuan3D-2's 'Hunyuan3DDiT' in the reversed convention (t = 0 noise, t = 1 data, v = D - E).

    ``forward(x, t, cond, guidance=None)``: x (B, N, in_channels), t (B,) in [0, 1], cond
    (B, L, context_in_dim), guidance (B,) the raw CFG scale w for guidance-distilled models
    (required then, ignored otherwise). Returns v: (B, N, in_channels).
    """

    def __init__(self, config: DiTConfig = DiTConfig()) -> None:
        super().__init__()
        self.config = config
        c = config
        self.latent_in = nn.Linear(c.in_channels, c.hidden_size, bias=True)
        self.time_in = MLPEmbedder(256, c.hidden_size)
        self.cond_in = nn.Linear(c.context_in_dim, c.hidden_size)
        if c.guidance_embed:
            self.guidance_in = MLPEmbedder(256, c.hidden_size)
        self.double_blocks = nn.ModuleList(
            [DoubleStreamBlock(c.hidden_size, c.num_heads, c.mlp_ratio, c.qkv_bias) for _ in range(c.depth)])
        self.single_blocks = nn.ModuleList(
            [SingleStreamBlock(c.hidden_size, c.num_heads, c.mlp_ratio) for _ in range(c.depth_single_blocks)])
        self.final_layer = LastLayer(c.hidden_size, c.in_channels)

    @property
    def guidance_embed(self) -> bool:
        return self.config.guidance_embed

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, guidance: Tensor | None = None) -> Tensor:
        latent = self.latent_in(x)  # (B, N, C)
        tf = self.config.time_factor
        vec = self.time_in(timestep_embedding(t, 256, max_period=1000.0, time_factor=tf).to(latent.dtype))
        if self.config.guidance_embed:
            if guidance is None:
                raise ValueError("this DiT is guidance-distilled (guidance_embed): pass guidance=(B,) scales")
            vec = vec + self.guidance_in(timestep_embedding(guidance, 256, max_period=1000.0, time_factor=tf))
        txt = self.cond_in(cond)  # (B, L, C)
        for block in self.double_blocks:
            latent, txt = block(latent, txt, vec)
        h = torch.cat((txt, latent), dim=1)  # (B, L + N, C)
        for block in self.single_blocks:
            h = block(h, vec)
        latent = h[:, txt.shape[1]:]
        return self.final_layer(latent, vec)
