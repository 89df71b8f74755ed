"""Small random-weight Hunyuan3D-2 models: the real architecture at toy sizes, for CI, notebooks, smoke runs.

:func:`tiny_pipeline` builds a seeded DiT + VAE pair in seconds on a CPU. The VAE uses two Fourier
frequencies (the released one uses eight) so that its random occupancy field is smooth, and its
output bias is set so the iso-level 0 cuts the field near its 70th percentile: every tiny shape
has a surface. :func:`write_checkpoint_folder` saves any pipeline in the official folder layout
(config.yaml + model{.fp16}.{safetensors,ckpt}), which the loaders read like a release.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from ..._optional import require
from ...limits import derived_seed
from ..models.dit import DiTConfig, ShapeDiT
from ..pipeline import ShapePipeline
from ..models.vae import ShapeVAE, VAEConfig
from ..decode.volume import decode_dense

__all__ = ["TINY_DIT", "TINY_VAE", "tiny_pipeline", "write_checkpoint_folder", "tiny_cond"]

TINY_DIT = DiTConfig(in_channels=8, context_in_dim=16, hidden_size=32, num_heads=4, depth=2, depth_single_blocks=2)
TINY_VAE = VAEConfig(num_latents=32, embed_dim=8, width=32, heads=4, num_decoder_layers=2, num_freqs=2,
                     include_pi=False, qkv_bias=False, qk_norm=True, scale_factor=1.0)
TINY_COND_TOKENS = 10
#: A toy Dinov2 (transformers) config with the released one's structure (SwiGLU, layerscale, 518 px, patch 14).
TINY_DINO = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, patch_size=14, image_size=518,
                 mlp_ratio=4, use_swiglu_ffn=True, layerscale_value=1.0, layer_norm_eps=1e-6, qkv_bias=True,
                 hidden_act="gelu", num_channels=3, model_type="dinov2", attention_probs_dropout_prob=0.0,
                 hidden_dropout_prob=0.0, drop_path_rate=0.0, initializer_range=0.02)
TINY_ENCODER = {"type": "DinoImageEncoder", "kwargs": {"config": TINY_DINO, "image_size": 518, "use_cls_token": True}}


def tiny_cond(seed: int = 0, tokens: int = TINY_COND_TOKENS, dim: int = TINY_DIT.context_in_dim) -> torch.Tensor:
    """A seeded stand-in for image tokens: (1, tokens, dim) float32."""
    return torch.randn(1, tokens, dim, generator=torch.Generator().manual_seed(derived_seed(seed, 7)))


@torch.no_grad()
def tiny_pipeline(seed: int = 0, *, guidance_embed: bool = False, turbo_vae: bool = False,
                  dtype: torch.dtype = torch.float32, inside_fraction: float = 0.3,
                  with_conditioner: bool = False) -> ShapePipeline:
    """A seeded small random-weight pipeline (scheduler 'consistency' when ``guidance_embed``).

    ``with_conditioner`` adds a toy DINOv2 image encoder (:data:`TINY_DINO`, needs transformers).
    """
    torch.manual_seed(seed)
    dit = ShapeDiT(DiTConfig(**{**asdict(TINY_DIT), "guidance_embed": guidance_embed}))
    vcfg = asdict(TINY_VAE)
    if turbo_vae:
        vcfg.update(geo_decoder_downsample_ratio=2, geo_decoder_mlp_expand_ratio=1, geo_decoder_ln_post=False)
    vae = ShapeVAE(VAEConfig(**vcfg))
    # put the iso-level inside the field: calibrate the output bias on a coarse grid of a reference latent
    z = torch.randn(1, *vae.latent_shape, generator=torch.Generator().manual_seed(derived_seed(seed, 11)))
    field = decode_dense(vae.geo_decoder, vae.decode_latents(z), 16, chunk_size=5000)
    vae.geo_decoder.output_proj.bias -= torch.quantile(field.flatten(), 1 - inside_fraction)
    conditioner = None
    if with_conditioner:
        from ..models.conditioner import ImageConditioner

        conditioner = ImageConditioner.from_config({"params": {"main_image_encoder": TINY_ENCODER}})
        with torch.no_grad():  # random, not transformers' init (which leaves layer scales and biases trivial)
            for prm in conditioner.parameters():
                prm.normal_(0, 0.2)
    return ShapePipeline(dit=dit, vae=vae, conditioner=conditioner,
                         scheduler="consistency" if guidance_embed else "flow", pcm_timesteps=100, dtype=dtype)


def _config_yaml(pipe: ShapePipeline, conditioner: dict | None) -> dict:
    """config.yaml contents in the release's layout (target / params per section)."""
    dit = asdict(pipe.dit.config)
    dit.update(axes_dim=[pipe.dit.config.hidden_size // pipe.dit.config.num_heads], theta=10000)
    cfg = {
        "model": {"target": "hy3dgen.shapegen.models.Hunyuan3DDiT", "params": dit},
        "vae": {"target": "hy3dgen.shapegen.models.ShapeVAE", "params": asdict(pipe.vae.config)},
        "scheduler": ({"target": "hy3dgen.shapegen.schedulers.ConsistencyFlowMatchEulerDiscreteScheduler",
                       "params": {"num_train_timesteps": 1000, "pcm_timesteps": pipe.pcm_timesteps}}
                      if pipe.scheduler == "consistency" else
                      {"target": "hy3dgen.shapegen.schedulers.FlowMatchEulerDiscreteScheduler",
                       "params": {"num_train_timesteps": 1000}}),
        "image_processor": {"target": "hy3dgen.shapegen.preprocessors.ImageProcessorV2",
                            "params": {"size": 512, "border_ratio": 0.15}},
    }
    if conditioner is not None:
        cfg["conditioner"] = {"target": "hy3dgen.shapegen.models.SingleImageEncoder",
                              "params": {"main_image_encoder": conditioner}}
    return cfg


def _dino_config(enc) -> dict:
    c = enc.model.config
    return {k: getattr(c, k) for k in TINY_DINO if hasattr(c, k)}


def write_checkpoint_folder(pipe: ShapePipeline, folder: str | os.PathLike, *, fmt: str = "safetensors",
                            variant: str | None = "fp16", dinov2_names: str = "4.x") -> Path:
    """Save ``pipe`` as an official-layout model folder; returns the weight file's path.

    ``fmt``: 'safetensors' (flat, prefixed keys) or 'ckpt' (torch pickle of {'model', 'vae'[, 'conditioner']}).
    ``variant='fp16'`` writes model.fp16.* with fp16 tensors; None writes model.* in float32.
    A conditioner (when the pipeline has one) is saved with the Dinov2 parameter names of transformers
    ``dinov2_names`` ('4.x', as in the release, or '5.x').
    """
    yaml = require("yaml", "writing config.yaml")

    from ..models.conditioner import convert_dinov2_keys

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if variant == "fp16" else torch.float32
    parts = {"model": pipe.dit.state_dict(), "vae": pipe.vae.state_dict()}
    conditioner = None
    if pipe.conditioner is not None:
        state = pipe.conditioner.state_dict()
        parts["conditioner"] = convert_dinov2_keys(state, {"x.attention.q_proj.w"} if dinov2_names == "5.x" else set())
        enc = pipe.conditioner.main_image_encoder
        conditioner = {"type": "DinoImageEncoder",
                       "kwargs": {"config": _dino_config(enc), "image_size": enc.image_size, "use_cls_token": enc.use_cls_token}}
    parts = {p: {k: v.detach().to("cpu", dtype).contiguous() for k, v in sd.items()} for p, sd in parts.items()}
    (folder / "config.yaml").write_text(yaml.safe_dump(_config_yaml(pipe, conditioner), sort_keys=False))
    name = f"model{'.' + variant if variant else ''}.{fmt}"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({f"{p}.{k}": v for p, sd in parts.items() for k, v in sd.items()}, tmp)
    elif fmt == "ckpt":
        torch.save(parts, tmp)
    else:
        raise ValueError(f"fmt must be 'safetensors' or 'ckpt', got {fmt!r}")
    os.replace(tmp, folder / name)
    return folder / name
