#!/usr/bin/env python3
"""Build (or check) the Hunyuan3D-2 reference fixtures under flowlab/data/hy3dgen/ (package data).

Run it in an environment with the reference installed (NOT flowlab's; hy3dgen is under a
non-commercial licence and is never a flowlab dependency)::

    python3 -m venv /tmp/hy3dgen
    /tmp/hy3dgen/bin/pip install torch==2.14.1 torchvision==0.29.1 hy3dgen==2.0.2
    /tmp/hy3dgen/bin/python tools/make_reference_fixtures.py            # compare, report
    /tmp/hy3dgen/bin/python tools/make_reference_fixtures.py --update   # overwrite

What it makes, all with seeded SMALL random configurations of the reference classes, on CPU:

* ``dit.safetensors`` / ``dit_guided.safetensors``: state dicts of a small Hunyuan3DDiT without /
  with guidance embedding, one forward pass (inputs and output, float32);
* ``vae.safetensors`` / ``vae_turbo.safetensors``: state dicts of a small ShapeVAE (standard, and
  the turbo geometry decoder), the post_kl + transformer output, a dense volume decode on a
  small grid (VanillaVolumeDecoder) and the marching-cubes mesh of the reference's export;
* ``sampling.safetensors``: the reference pipeline's 4-step CFG sampling (FlowMatchEuler scheduler,
  float32 and fp16) and a 4-step turbo sampling (consistency scheduler, guidance-embedded DiT),
  the latents after every step, and the mesh of the float32 result;
* ``conditioner.safetensors``: a toy Dinov2 inside the reference's DinoImageEncoder (its resize,
  crop and normalisation) and its tokens for one image; ``preprocess.safetensors``: a small RGBA
  picture and the reference ImageProcessorV2's output (recentred, white background, OpenCV resizing);
* ``fixtures.json``: the small configs and scalar facts (mesh vertex / face counts ...);
* ``manifest.json``: the state-dict keys and shapes of every released configuration, built on the
  meta device (no weights are needed).

Without ``--update`` the fixtures are rebuilt in memory and compared with the committed ones
(tensors: max abs difference; json: equality); exit status 1 on a difference.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "flowlab" / "data" / "hy3dgen"  # package data: resources.data_dir("hy3dgen")

# ---- small configurations ----------------------------------------------------------------------------
DIT_SMALL = dict(in_channels=8, context_in_dim=16, hidden_size=32, mlp_ratio=4.0, num_heads=4, depth=2,
                 depth_single_blocks=2, axes_dim=[8], theta=10000, qkv_bias=True, time_factor=1000,
                 guidance_embed=False)
VAE_SMALL = dict(num_latents=16, embed_dim=8, width=32, heads=4, num_decoder_layers=2, num_freqs=8,
                 include_pi=False, qkv_bias=False, qk_norm=True, scale_factor=0.9990943042622529)
VAE_TURBO_SMALL = dict(VAE_SMALL, geo_decoder_downsample_ratio=2, geo_decoder_mlp_expand_ratio=1,
                       geo_decoder_ln_post=False)
DINO_SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, patch_size=14, image_size=518,
                  mlp_ratio=4, use_swiglu_ffn=True, layerscale_value=1.0, layer_norm_eps=1e-6, qkv_bias=True,
                  hidden_act="gelu", num_channels=3, model_type="dinov2", attention_probs_dropout_prob=0.0,
                  hidden_dropout_prob=0.0, drop_path_rate=0.0, initializer_range=0.02)
N_COND = 10          # cond tokens
OCTREE = 16          # small grid: 17^3 points
CHUNKS = 1000        # points per geo-decoder call
STEPS = 4
GUIDANCE = 5.0
SEED = 0

# ---- released configurations (config.yaml params), for the key / shape manifest ----------------------
DIT_RELEASED = dict(in_channels=64, context_in_dim=1536, hidden_size=1024, mlp_ratio=4.0, num_heads=16, depth=16,
                    depth_single_blocks=32, axes_dim=[64], theta=10000, qkv_bias=True, guidance_embed=False)
VAE_RELEASED = dict(num_latents=3072, embed_dim=64, num_freqs=8, include_pi=False, heads=16, width=1024,
                    num_decoder_layers=16, qkv_bias=False, qk_norm=True, scale_factor=0.9990943042622529)
TURBO_GEO = dict(geo_decoder_downsample_ratio=2, geo_decoder_mlp_expand_ratio=1, geo_decoder_ln_post=False)
RELEASED = {
    # name: (kind, params, checkpoints that share the architecture)
    "dit-v2-0": ("dit", DIT_RELEASED, ["hunyuan3d-dit-v2-0", "hunyuan3d-dit-v2-mv"]),
    "dit-v2-0-guidance": ("dit", dict(DIT_RELEASED, guidance_embed=True),
                          ["hunyuan3d-dit-v2-0-fast", "hunyuan3d-dit-v2-0-turbo", "hunyuan3d-dit-v2-mv-fast",
                           "hunyuan3d-dit-v2-mv-turbo"]),
    "dit-v2-mini": ("dit", dict(DIT_RELEASED, depth=8, depth_single_blocks=16), ["hunyuan3d-dit-v2-mini"]),
    "dit-v2-mini-guidance": ("dit", dict(DIT_RELEASED, depth=8, depth_single_blocks=16, guidance_embed=True),
                             ["hunyuan3d-dit-v2-mini-fast", "hunyuan3d-dit-v2-mini-turbo"]),
    "vae-v2-0": ("vae", VAE_RELEASED, ["hunyuan3d-vae-v2-0", "vae of hunyuan3d-dit-v2-0 / mv"]),
    "vae-v2-0-turbo": ("vae", dict(VAE_RELEASED, **TURBO_GEO), ["hunyuan3d-vae-v2-0-turbo"]),
    "vae-v2-mini": ("vae", dict(VAE_RELEASED, num_latents=512, scale_factor=1.0188137142395404),
                    ["hunyuan3d-vae-v2-mini", "vae of hunyuan3d-dit-v2-mini"]),
    "vae-v2-mini-turbo": ("vae", dict(VAE_RELEASED, num_latents=512, scale_factor=1.0188137142395404, **TURBO_GEO),
                          ["hunyuan3d-vae-v2-mini-turbo"]),
}


def _reference():
    """Import only the reference submodules needed (no rembg / texture code)."""
    from hy3dgen.shapegen.models.autoencoders.model import ShapeVAE
    from hy3dgen.shapegen.models.denoisers.hunyuan3ddit import Hunyuan3DDiT
    from hy3dgen.shapegen import pipelines, schedulers
    return Hunyuan3DDiT, ShapeVAE, pipelines, schedulers


def _sd(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().float().contiguous().clone() for k, v in module.state_dict().items()}


def _seeded(cls, params: dict, seed: int):
    torch.manual_seed(seed)
    m = cls(**params).eval()
    # random init leaves LayerNorm / RMSNorm scales at 1 and many biases at 0: perturb every tensor so that
    # parity tests exercise each parameter (a wrong affine or bias path would otherwise go unnoticed)
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m


class _Cond(torch.nn.Module):
    """Stands in for the DINOv2 conditioner: a fixed embedding, zeros unconditional (as the reference)."""

    def __init__(self, cond: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("cond", cond)

    def forward(self, image, **kw):
        return {"main": self.cond.expand(image.shape[0], -1, -1)}

    def unconditional_embedding(self, batch_size, **kw):
        return {"main": torch.zeros(batch_size, *self.cond.shape[1:], dtype=self.cond.dtype)}


def _processor(img, **kw):
    return {"image": torch.zeros(1, 3, 8, 8)}


def _mesh(pipelines, vae, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference decode of final DiT latents: logits volume, mesh vertices / faces as exported."""
    from hy3dgen.shapegen.models.autoencoders.volume_decoders import VanillaVolumeDecoder

    with torch.no_grad():
        tokens = vae(1.0 / vae.scale_factor * latents)
        logits = VanillaVolumeDecoder()(tokens, vae.geo_decoder, bounds=1.01, num_chunks=CHUNKS,
                                        octree_resolution=OCTREE, enable_pbar=False)
        out = vae.latents2mesh(tokens, bounds=1.01, mc_level=0.0, num_chunks=CHUNKS, octree_resolution=OCTREE,
                               enable_pbar=False)
    mesh = pipelines.export_to_trimesh(out)[0]
    if mesh is None:
        raise SystemExit("reference marching cubes found no surface: change the fixture seed or bias")
    return logits, torch.from_numpy(np.asarray(mesh.vertices)), torch.from_numpy(np.asarray(mesh.faces))


def _sample(pipelines, schedulers, dit, vae, cond, dtype, turbo: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference pipeline's sampling loop; returns the final latents and every intermediate state."""
    sched = (schedulers.ConsistencyFlowMatchEulerDiscreteScheduler(pcm_timesteps=100) if turbo
             else schedulers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000))
    # the pipeline casts its modules in place: give it copies so fp16 runs never round the shared weights
    dit, vae = copy.deepcopy(dit), copy.deepcopy(vae)
    pipe = pipelines.Hunyuan3DDiTFlowMatchingPipeline(vae=vae, model=dit, scheduler=sched, conditioner=_Cond(cond),
                                                      image_processor=_processor, device="cpu", dtype=dtype)
    states = []

    def cb(i, t, outputs):
        states.append(outputs.prev_sample.detach().float().clone())

    latents = pipe(image=object(), num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                   generator=torch.Generator().manual_seed(SEED), output_type="latent", enable_pbar=False,
                   callback=cb, callback_steps=1)
    return latents.detach().float(), torch.stack(states)


def build() -> tuple[dict[str, dict[str, torch.Tensor]], dict, dict]:
    Hunyuan3DDiT, ShapeVAE, pipelines, schedulers = _reference()
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    facts: dict = {"small": {"dit": DIT_SMALL, "vae": VAE_SMALL, "vae_turbo": VAE_TURBO_SMALL, "n_cond": N_COND,
                             "octree": OCTREE, "chunks": CHUNKS, "steps": STEPS, "guidance": GUIDANCE,
                             "seed": SEED}}
    g = torch.Generator().manual_seed(123)
    c = DIT_SMALL

    # DiT forward, without and with guidance embedding
    x = torch.randn(2, 16, c["in_channels"], generator=g)
    t = torch.tensor([0.25, 0.8125])
    cond = torch.randn(2, N_COND, c["context_in_dim"], generator=g)
    guidance = torch.tensor([5.0, 2.5])
    dits = {}
    for name, params, seed in (("dit", DIT_SMALL, 1), ("dit_guided", dict(DIT_SMALL, guidance_embed=True), 2)):
        dit = _seeded(Hunyuan3DDiT, params, seed)
        with torch.no_grad():
            v = dit(x, t, {"main": cond}, guidance=guidance if params["guidance_embed"] else None)
        tensors[name] = {**_sd(dit, "model."), "in.x": x, "in.t": t, "in.cond": cond, "in.guidance": guidance,
                         "out.v": v}
        dits[name] = dit

    # VAE: post_kl + transformer, dense volume on a small grid, marching cubes
    z = torch.randn(1, VAE_SMALL["num_latents"], VAE_SMALL["embed_dim"], generator=g)
    vaes = {}
    for name, params, seed in (("vae", VAE_SMALL, 3), ("vae_turbo", VAE_TURBO_SMALL, 4)):
        vae = _seeded(ShapeVAE, params, seed)
        with torch.no_grad():
            tokens = vae(z)
            # centre the field so that the iso-level 0 crosses it (random weights give any offset)
            from hy3dgen.shapegen.models.autoencoders.volume_decoders import VanillaVolumeDecoder
            pre = VanillaVolumeDecoder()(vae(1.0 / vae.scale_factor * z), vae.geo_decoder, num_chunks=CHUNKS,
                                         octree_resolution=OCTREE, enable_pbar=False)
            vae.geo_decoder.output_proj.bias -= pre.median()
        logits, verts, faces = _mesh(pipelines, vae, z)
        tensors[name] = {**_sd(vae, "vae."), "in.z": z, "out.tokens": tokens, "out.logits": logits[0],
                         "out.vertices": verts, "out.faces": faces}
        facts[name] = {"n_vertices": int(verts.shape[0]), "n_faces": int(faces.shape[0])}
        vaes[name] = vae

    # Sampling through the reference pipeline (4 calls, CFG 5.0), float32 and fp16; turbo with the guided DiT
    cond1 = torch.randn(1, N_COND, c["context_in_dim"], generator=g)
    s = {"in.cond": cond1}
    for tag, dit_name, dtype, turbo in (("f32", "dit", torch.float32, False), ("f16", "dit", torch.float16, False),
                                        ("turbo_f32", "dit_guided", torch.float32, True),
                                        ("turbo_f16", "dit_guided", torch.float16, True)):
        lat, states = _sample(pipelines, schedulers, dits[dit_name], vaes["vae"], cond1, dtype, turbo)
        s[f"out.{tag}.latents"] = lat
        s[f"out.{tag}.states"] = states
    logits, verts, faces = _mesh(pipelines, vaes["vae"], s["out.f32.latents"])
    s.update({"out.f32.logits": logits[0], "out.f32.vertices": verts, "out.f32.faces": faces})
    facts["sampling"] = {"n_vertices": int(verts.shape[0]), "n_faces": int(faces.shape[0]),
                         "turbo_pcm_timesteps": 100}
    tensors["sampling"] = s

    # Conditioner: a toy Dinov2 in the reference's DinoImageEncoder (resize 518, crop, ImageNet norm), and the
    # reference's image preprocessing (recentre on alpha, white background; OpenCV resizing) of a small picture
    from hy3dgen.shapegen.models.conditioner import DinoImageEncoder
    from hy3dgen.shapegen.preprocessors import ImageProcessorV2

    torch.manual_seed(5)
    enc = DinoImageEncoder(config=DINO_SMALL, image_size=518, use_cls_token=True)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(6)
        for p in enc.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    img = torch.rand(1, 3, 64, 48, generator=g) * 2 - 1  # (B, 3, H, W) in [-1, 1], not square
    with torch.no_grad():
        tokens = enc(img)
    tensors["conditioner"] = {**{f"conditioner.main_image_encoder.{k}": v.detach().clone()
                                 for k, v in enc.state_dict().items()}, "in.image": img, "out.tokens": tokens}
    rgba = np.zeros((60, 80, 4), np.uint8)
    yy, xx = np.mgrid[:60, :80]
    blob = ((yy - 28) / 18.0) ** 2 + ((xx - 45) / 25.0) ** 2 < 1
    rgba[blob] = (200, 60, 30, 255)
    rgba[blob & (xx < 40)] = (40, 90, 220, 255)
    from PIL import Image

    pre = ImageProcessorV2(size=64, border_ratio=0.15)(Image.fromarray(rgba, "RGBA"))
    tensors["preprocess"] = {"in.rgba": torch.from_numpy(rgba), "out.image": pre["image"].float()}
    facts["conditioner"] = {"dino": DINO_SMALL, "image_size": 518, "preprocess_size": 64, "border_ratio": 0.15}

    # turbo / flow schedules as the reference schedulers build them
    flow = schedulers.FlowMatchEulerDiscreteScheduler()
    flow.set_timesteps(sigmas=np.linspace(0, 1, STEPS), device="cpu")
    cons = schedulers.ConsistencyFlowMatchEulerDiscreteScheduler(pcm_timesteps=100)
    cons.set_timesteps(5)
    facts["schedules"] = {"flow_4_sigmas": [float(v) for v in flow.sigmas],
                          "flow_4_timesteps": [float(v) for v in flow.timesteps],
                          "turbo_5_sigmas": [float(v) for v in cons.sigmas_]}
    return tensors, facts, manifest()


def manifest() -> dict:
    Hunyuan3DDiT, ShapeVAE, _, _ = _reference()
    out = {}
    for name, (kind, params, checkpoints) in RELEASED.items():
        with torch.device("meta"):
            m = Hunyuan3DDiT(**params) if kind == "dit" else ShapeVAE(**params)
        sd = m.state_dict()
        out[name] = {"kind": kind, "params": params, "checkpoints": checkpoints,
                     "n_params": int(sum(p.numel() for p in m.parameters())),
                     "keys": {k: list(v.shape) for k, v in sd.items()}}
    return out


def _compare(tensors, facts, man) -> list[str]:
    from safetensors.torch import load_file

    problems = []
    for name, group in tensors.items():
        path = OUT / f"{name}.safetensors"
        if not path.exists():
            problems.append(f"{path.name}: missing")
            continue
        old = load_file(str(path))
        if set(old) != set(group):
            problems.append(f"{path.name}: keys differ ({sorted(set(old) ^ set(group))[:5]})")
            continue
        for k, v in group.items():
            if old[k].shape != v.shape:
                problems.append(f"{path.name}:{k}: shape {tuple(old[k].shape)} != {tuple(v.shape)}")
            elif v.numel() and (old[k].double() - v.double()).abs().max().item() > 1e-6 * max(1.0, v.abs().max().item()):
                problems.append(f"{path.name}:{k}: max abs diff {(old[k].double() - v.double()).abs().max().item():.3e}")
    for fname, obj in (("fixtures.json", facts), ("manifest.json", man)):
        p = OUT / fname
        if not p.exists() or json.loads(p.read_text()) != json.loads(json.dumps(obj)):
            problems.append(f"{fname}: differs or missing")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--update", action="store_true", help="overwrite the committed fixtures")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # deterministic reductions
    tensors, facts, man = build()
    if not args.update:
        problems = _compare(tensors, facts, man)
        for p in problems:
            print("DIFF", p)
        print("fixtures match the reference" if not problems else f"{len(problems)} difference(s); rerun with --update")
        return 1 if problems else 0
    from safetensors.torch import save_file

    OUT.mkdir(parents=True, exist_ok=True)
    for name, group in tensors.items():
        with tempfile.NamedTemporaryFile(dir=OUT, suffix=".tmp", delete=False) as tmp:
            pass
        save_file({k: v.contiguous() for k, v in group.items()}, tmp.name)
        Path(tmp.name).chmod(0o644)
        Path(tmp.name).replace(OUT / f"{name}.safetensors")
    (OUT / "fixtures.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    (OUT / "manifest.json").write_text(json.dumps(man, sort_keys=True, separators=(",", ":")) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(tensors)} tensor files + 2 json to {OUT} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
