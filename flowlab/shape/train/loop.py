"""Train the mini Hunyuan3D-2-architecture model on flowlab's procedural shapes.

Two stages, one process (each stage has a step count, or 'auto' = as many as fit its time budget):

1. **ShapeVAE** (:class:`~flowlab.shape.models.encoder.ShapeVAEEncoder` + :class:`~flowlab.shape.models.vae.ShapeVAE`
   decoder): fresh random shapes every step; surface points with normals in, occupancy of uniform and
   near-surface queries out; loss = BCE(logits, occupancy) + ``kl_weight`` * KL, or with ``labels="tsdf"``
   the logits regressed on the truncated signed distance (:mod:`flowlab.shape.train.labels`).
2. **Image encoder + DiT**: a fixed pool of shapes is rendered (:func:`flowlab.shape.data.render.render`) and
   encoded to latents ``D = scale_factor * mode(q(z | shape))`` (``scale_factor = 1 / std(D)``, as the
   release stores it). Flow matching in the REVERSED convention, exactly as Hunyuan3D-2:
   ``x_t = REVERSED.interpolate(D, E, t) = t D + (1 - t) E``, target
   ``REVERSED.velocity_target(D, E, t) = D - E``, ``t ~ U(0, 1)``; the condition (image tokens) is
   replaced by zeros with probability ``cfg_dropout`` (the pipeline's unconditional branch).
   An exponential moving average of the DiT and image encoder weights is what ships.

Then :func:`evaluate` measures, on held-out seeds, the VAE reconstruction IoU and the image -> shape IoU
(sampled with flowlab's :class:`~flowlab.shape.pipeline.ShapePipeline`, reversed convention, CFG).

Everything is seeded: the same arguments give the same run on a CPU (``--smoke``); on a GPU, up to
the non-determinism of its kernels. ``--vae-steps auto`` / ``--dit-steps auto`` times the first steps and
fixes the step count from the time budget; the log records the counts, which reproduce the run.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...conventions import REVERSED
from ...errors import FlowlabError
from ...limits import derived_seed
from ..models.dit import DiTConfig, ShapeDiT
from ..models.encoder import EncoderConfig, ShapeVAEEncoder
from ..models.image_encoder import PatchConditioner
from ..data.primitives import FAMILIES, query_points, random_shapes, surface_points
from ..data.render import render, to_model_input
from ..models.vae import ShapeVAE, VAEConfig
from .evaluate import EVAL_SEED, curve_due, curve_point, evaluate, tf32
from .labels import Labels

__all__ = ["MiniConfig", "TrainOptions", "MINI", "MINI_512", "THIN_PARTS", "ARCHS", "SMOKE", "build_models",
           "vae_families", "train", "evaluate", "EVAL_SEED", "TRAIN_SEED"]

TRAIN_SEED = 0


@dataclass(frozen=True)
class MiniConfig:
    """Architecture of the mini model: the released classes at small widths."""

    vae: VAEConfig = VAEConfig(num_latents=128, embed_dim=64, width=256, heads=4, num_decoder_layers=3, num_freqs=8,
                               include_pi=False, qkv_bias=False, qk_norm=True, geo_decoder_downsample_ratio=2,
                               geo_decoder_mlp_expand_ratio=2, geo_decoder_ln_post=True, scale_factor=1.0)
    encoder: EncoderConfig = EncoderConfig(num_latents=128, embed_dim=64, width=256, heads=4, num_encoder_layers=1)
    dit: DiTConfig = DiTConfig(in_channels=64, context_in_dim=128, hidden_size=256, mlp_ratio=4.0, num_heads=4,
                               depth=1, depth_single_blocks=2, qkv_bias=True)
    image: dict = field(default_factory=lambda: dict(image_size=64, patch_size=8, width=128, layers=4, heads=4))

    def __post_init__(self) -> None:
        if self.vae.num_latents != self.encoder.num_latents or self.vae.embed_dim != self.encoder.embed_dim:
            raise ValueError("encoder and decoder latent shapes differ")
        if self.dit.in_channels != self.vae.embed_dim or self.dit.context_in_dim != self.image["width"]:
            raise ValueError("DiT channels do not match the VAE / image encoder")


#: The shipped mini model's architecture (128 latent tokens x 64 channels).
MINI = MiniConfig()
#: Issue 21's larger candidate: 512 latent tokens x 32 channels, 8 heads, 4 decoder layers, a 2-layer
#: encoder, 3 single DiT blocks (measured in benchmarks/results/mini_issue21; not the shipped weights).
MINI_512 = MiniConfig(
    vae=replace(MINI.vae, num_latents=512, embed_dim=32, heads=8, num_decoder_layers=4),
    encoder=EncoderConfig(num_latents=512, embed_dim=32, width=256, heads=8, num_encoder_layers=2),
    dit=replace(MINI.dit, in_channels=32, depth_single_blocks=3))
#: A toy configuration for ``--smoke`` (CPU, seconds).
SMOKE = MiniConfig(
    vae=replace(MINI.vae, num_latents=16, embed_dim=8, width=32, heads=2, num_decoder_layers=1),
    encoder=EncoderConfig(num_latents=16, embed_dim=8, width=32, heads=2, num_encoder_layers=1),
    dit=DiTConfig(in_channels=8, context_in_dim=16, hidden_size=32, num_heads=2, depth=1, depth_single_blocks=1),
    image=dict(image_size=16, patch_size=8, width=16, layers=1, heads=2))


#: Issue 21's query sampling for thin parts (table legs, mug handles): 6144 queries, 75% near the surface
#: at three sigmas, mug and table drawn 3x as often in VAE batches. The shipped model used the defaults.
THIN_PARTS = dict(queries=6144, near_fraction=0.75, near_sigmas=(0.004, 0.012, 0.04), boost=("mug", "table") * 2)
#: ``train-shape --arch``: architecture and the sampling options that go with it.
ARCHS = {"mini": (MINI, {}), "mini-512": (MINI_512, THIN_PARTS)}


@dataclass
class TrainOptions:
    seed: int = TRAIN_SEED
    device: str = "cpu"
    # VAE stage
    vae_steps: int | str = "auto"
    vae_time: float = 180.0
    vae_batch: int = 192
    vae_lr: float = 4e-4
    surface_points: int = 2048
    queries: int = 4096
    near_fraction: float = 0.5  # share of the queries near the surface (the rest uniform in the box)
    near_sigmas: tuple = (0.01, 0.05)  # Gaussian offsets, an equal share each (thin parts need small ones)
    boost: tuple = ()  # extra draws of these families in VAE batches (("mug", "table") * 2: 3x as often)
    kl_weight: float = 1e-3
    labels: str = "binary"  # "binary": BCE on occupancy (the release); "tsdf": truncated signed distance (labels.py)
    tsdf_tau: float = 0.01  # tsdf: distance per logit unit
    tsdf_clip: float = 5.0  # tsdf: band half-width in logits (|sdf| < clip * tau is regressed)
    # pool + DiT stage
    pool: int = 80000
    dit_steps: int | str = "auto"
    dit_time: float = 200.0
    dit_batch: int = 512
    dit_lr: float = 5e-4
    cfg_dropout: float = 0.1
    ema: float = 0.999
    render_size: int = 64
    # evaluation
    eval_shapes: int = 200
    eval_steps: int = 50
    eval_guidance: float = 5.0
    eval_resolution: int = 64
    eval_offset: int = 0  # held-out shapes from seed EVAL_SEED + eval_offset (1: the CPU check's other shapes)
    guidance_sweep: tuple = (1.0, 2.0, 3.0, 5.0)
    curve_points: int = 6  # held-out IoU measured this many times during each stage (the curves in the log)
    # misc
    amp: bool = True
    deadline: float | None = None  # wall-clock seconds from start; stages shrink to fit
    eval_reserve: float = 45.0  # seconds kept for the evaluation when fitting the DiT stage to the deadline
    log_every: int = 50
    warmup: int = 200


def build_models(cfg: MiniConfig = MINI, seed: int = 0) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {"encoder": ShapeVAEEncoder(cfg.encoder), "vae": ShapeVAE(cfg.vae), "dit": ShapeDiT(cfg.dit),
            "conditioner": PatchConditioner(**cfg.image)}


def _lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _shape_seed(seed: int, step: int) -> int:
    return seed * 1_000_003 + step


# ---- stage 1: VAE ----------------------------------------------------------------------------------

def vae_families(opts: TrainOptions) -> tuple[str, ...]:
    """The families a VAE batch draws from, uniformly: each once, the ``boost`` ones once more per mention."""
    return FAMILIES + tuple(opts.boost)


@torch.no_grad()
def vae_batch(shapes, opts: TrainOptions, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Surface points, normals (B, n, 3), queries (B, m, 3) and their signed distances (B, m; negative
    inside), in float32."""
    surf, nrm = surface_points(shapes, opts.surface_points, g)
    near = int(round(opts.queries * opts.near_fraction))
    q, sdf = query_points(shapes, opts.queries - near, near, g, surface=surf, sigmas=tuple(opts.near_sigmas),
                          signed=True)
    return surf, nrm, q, sdf


def labels_of(opts: TrainOptions) -> Labels:
    """The :class:`~flowlab.shape.train.labels.Labels` of ``opts`` (checked)."""
    return Labels(opts.labels, opts.tsdf_tau, opts.tsdf_clip)


def vae_loss(encoder: ShapeVAEEncoder, vae: ShapeVAE, batch, g: torch.Generator, kl_weight: float,
             sample: bool = True, labels: Labels = Labels()) -> tuple[Tensor, dict]:
    """Label loss (BCE on occupancy, or the truncated-SDF loss) + kl_weight * KL for one :func:`vae_batch`,
    and its parts (tensors; the label loss under its kind's name, ``bce`` or ``tsdf``)."""
    surf, nrm, q, sdf = batch
    post = encoder(surf, nrm)
    z = post.sample(g) if sample else post.mode()
    logits = vae.geo_decoder(q, vae(z)).float()
    fit = labels.loss(logits, sdf)
    kl = post.kl().mean().float()
    acc = ((logits > 0) == (sdf < 0)).float().mean()
    # detached tensors, not floats: reading them back is a host-device sync, done only at logging steps
    return fit + kl_weight * kl, {labels.loss_name: fit.detach(), "kl": kl.detach(), "acc": acc}


class _StepBudget:
    """A step count, or 'auto': time steps 10 to 30 (after warm-up) and fit the rest into the time budget
    (and into what the overall deadline leaves, less ``reserve`` seconds)."""

    def __init__(self, name: str, steps, budget_s: float, opts: "TrainOptions", dev: torch.device, t0: float,
                 reserve: float = 0.0) -> None:
        self.name, self.auto, self.budget, self.opts, self.dev, self.t0 = name, steps == "auto", budget_s, opts, dev, t0
        self.reserve = reserve
        self.total = steps if isinstance(steps, int) else 10 ** 9
        self.start = time.time()

    def after(self, step: int) -> int:
        """Call after each step; returns the (possibly recalibrated) total."""
        if self.auto and step == 10:
            _sync(self.dev)
            self.t10 = time.time()
        if self.auto and step == 30:  # fix the step count from the speed after warm-up
            _sync(self.dev)
            per = (time.time() - self.t10) / 20
            left = self.budget - (time.time() - self.start)
            if self.opts.deadline is not None:
                left = min(left, self.opts.deadline - self.reserve - (time.time() - self.t0))
            self.total = max(40, int(left / per) + step)
            print(f"[{self.name}] {per * 1000:.1f} ms/step -> {self.total} steps", flush=True)
        return self.total


def train_vae(models, opts: TrainOptions, log: dict, t0: float) -> None:
    dev = torch.device(opts.device)
    enc, vae = models["encoder"], models["vae"]
    params = list(enc.parameters()) + list(vae.parameters())
    opt = torch.optim.AdamW(params, lr=opts.vae_lr, weight_decay=0.01, betas=(0.9, 0.99))
    g = torch.Generator(dev).manual_seed(derived_seed(opts.seed, 1))
    budget = _StepBudget("vae", opts.vae_steps, opts.vae_time, opts, dev, t0)
    total = budget.total
    labels = labels_of(opts)
    fit = labels.loss_name
    hist = log.setdefault("vae", {"step": [], "loss": [], fit: [], "kl": [], "acc": [], "lr": [], "time": []})
    step, start = 0, time.time()
    while step < total:
        shapes = random_shapes(opts.vae_batch, _shape_seed(opts.seed, step), families=vae_families(opts), device=dev)
        lr = _lr(step, total, opts.vae_lr, opts.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = vae_batch(shapes, opts, g)  # analytic labels in float32, outside autocast
        with _autocast(dev, opts.amp):
            loss, parts = vae_loss(enc, vae, batch, g, opts.kl_weight, labels=labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        total = budget.after(step)
        if step % opts.log_every == 0 or step == total:
            parts = {k: v.item() for k, v in parts.items()}
            for k, v in (("step", step), ("loss", loss.item()), ("lr", lr), ("time", time.time() - start), *parts.items()):
                hist[k].append(v)
            print(f"[vae] step {step}/{total} loss {loss.item():.4f} {fit} {parts[fit]:.4f} kl {parts['kl']:.3f} "
                  f"acc {parts['acc']:.4f} ({time.time() - t0:.0f} s)", flush=True)
        if curve_due(step, total, opts):
            curve_point(log, "vae", step, models, None, opts)
    log["vae_steps"] = step


# ---- pool ---------------------------------------------------------------------------------------------

@torch.no_grad()
def make_pool(models, opts: TrainOptions, n: int, seed: int, chunk: int = 512) -> dict[str, Tensor]:
    """n shapes from ``seed``: images (n, 3, S, S) in [-1, 1] and latent modes (n, K, C), float16."""
    dev = torch.device(opts.device)
    enc = models["encoder"].eval()
    shapes = random_shapes(n, seed, device=dev)
    g = torch.Generator(dev).manual_seed(derived_seed(seed, 3))
    imgs, lat = [], []
    for i in range(0, n, chunk):
        s = shapes[i:i + chunk]
        imgs.append(to_model_input(render(s, opts.render_size)).half())
        surf, nrm = surface_points(s, opts.surface_points, g)
        with _autocast(dev, opts.amp):
            lat.append(enc(surf, nrm).mode().float().half())
    enc.train()
    return {"images": torch.cat(imgs), "latents": torch.cat(lat), "family": shapes.family}


# ---- stage 2: image encoder + DiT -----------------------------------------------------------------

def flow_matching_loss(dit: ShapeDiT, cond_model: nn.Module, images: Tensor, data: Tensor, opts: TrainOptions,
                       g: torch.Generator) -> Tensor:
    """REVERSED-convention flow matching: x_t = t D + (1 - t) E, target D - E, t ~ U(0, 1)."""
    b = data.shape[0]
    dev = data.device
    cond = cond_model(images)
    keep = (torch.rand(b, generator=g, device=dev) >= opts.cfg_dropout).to(cond.dtype)
    cond = cond * keep[:, None, None]  # dropped: zero tokens, the pipeline's unconditional branch
    t = torch.rand(b, generator=g, device=dev)
    noise = torch.randn(data.shape, generator=g, device=dev)
    x_t = REVERSED.interpolate(data, noise, t)
    target = REVERSED.velocity_target(data, noise, t)
    v = dit(x_t, t, cond)
    return F.mse_loss(v.float(), target)


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)


def train_dit(models, pool, scale: float, opts: TrainOptions, log: dict, t0: float) -> dict[str, nn.Module]:
    dev = torch.device(opts.device)
    dit, cond = models["dit"], models["conditioner"]
    ema = {"dit": copy.deepcopy(dit).eval(), "conditioner": copy.deepcopy(cond).eval()}
    params = list(dit.parameters()) + list(cond.parameters())
    opt = torch.optim.AdamW(params, lr=opts.dit_lr, weight_decay=0.01, betas=(0.9, 0.99))
    g = torch.Generator(dev).manual_seed(derived_seed(opts.seed, 2))
    n = pool["latents"].shape[0]
    budget = _StepBudget("dit", opts.dit_steps, opts.dit_time, opts, dev, t0, reserve=opts.eval_reserve)
    total = budget.total
    hist = log.setdefault("dit", {"step": [], "loss": [], "lr": [], "time": []})
    step, start = 0, time.time()
    while step < total:
        idx = torch.randint(n, (min(opts.dit_batch, n),), generator=g, device=dev)
        images = pool["images"][idx].float()
        data = pool["latents"][idx].float() * scale
        lr = _lr(step, total, opts.dit_lr, opts.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        with _autocast(dev, opts.amp):
            loss = flow_matching_loss(dit, cond, images, data, opts, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _ema_update(ema["dit"], dit, opts.ema if step > opts.warmup else 0.0)
        _ema_update(ema["conditioner"], cond, opts.ema if step > opts.warmup else 0.0)
        step += 1
        total = budget.after(step)
        if step % opts.log_every == 0 or step == total:
            for k, v in (("step", step), ("loss", loss.item()), ("lr", lr), ("time", time.time() - start)):
                hist[k].append(v)
            print(f"[dit] step {step}/{total} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
        if curve_due(step, total, opts) and step < total:  # the final point is the full evaluation
            curve_point(log, "dit", step, models, (ema, scale), opts)
    log["dit_steps"] = step
    return ema


# ---- driver ------------------------------------------------------------------------------------------

def _save_module(module: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    from ...io import write_atomic

    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    write_atomic(path, tmp.read_bytes())
    tmp.unlink()


def load_module(module: nn.Module, path: Path) -> nn.Module:
    from ..load.checkpoint import load_strict
    from ..load.mini import read_checkpoint

    state = read_checkpoint(path)
    own = module.state_dict()
    return load_strict(module, {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()},
                       what=path.stem, source=path)


def train(out: Path, cfg: MiniConfig = MINI, opts: TrainOptions = TrainOptions(), *,
          init: Path | None = None, stages: tuple[str, ...] = ("vae", "dit", "eval")) -> dict:
    """Run the stages, writing ``encoder / vae / dit / conditioner .safetensors`` (fp16) and ``train_log.json``
    to ``out``. ``init``: a folder with those files to start from (e.g. to skip the VAE stage).
    On CUDA the training runs with TF32 on; the caller's TF32 settings are restored after."""
    with tf32(True if torch.device(opts.device).type == "cuda" else None):
        return _train(out, cfg, opts, init=init, stages=stages)


def _train(out: Path, cfg: MiniConfig, opts: TrainOptions, *, init: Path | None,
           stages: tuple[str, ...]) -> dict:
    t0 = time.time()
    labels_of(opts)  # a bad label kind or scale is refused before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(opts.device)
    models = build_models(cfg, opts.seed)
    log: dict = {"config": {"vae": cfg.vae.as_dict(), "encoder": cfg.encoder.as_dict(), "dit": cfg.dit.as_dict(),
                            "image": dict(cfg.image)},
                 "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opts).items()},
                 "params": {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()},
                 "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                 "torch": torch.__version__}
    scale = 1.0
    if init is not None:
        init = Path(init)
        for name, m in models.items():
            if (init / f"{name}.safetensors").is_file():
                load_module(m, init / f"{name}.safetensors")
        from ..load.mini import read_train_log

        prev = read_train_log(init) if (init / "train_log.json").is_file() else {}
        scale = prev.get("scale_factor", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise FlowlabError(f"{init / 'train_log.json'}: scale_factor = {scale!r} is not a finite number > 0; "
                               "--init needs a run whose vae stage finished")
        scale = float(scale)
        log["init"] = {"from": str(init), "previous": {k: prev.get(k) for k in ("vae_steps", "dit_steps", "scale_factor")}}
    for m in models.values():
        m.to(dev).train()
    print(f"params: {log['params']}", flush=True)

    def save(ema=None):
        for name in ("encoder", "vae"):
            _save_module(models[name], out / f"{name}.safetensors")
        src = ema or {k: models[k] for k in ("dit", "conditioner")}
        for name, m in src.items():
            _save_module(m, out / f"{name}.safetensors")
        log["scale_factor"] = scale
        log["elapsed_s"] = round(time.time() - t0, 1)
        from ...io import write_atomic

        write_atomic(out / "train_log.json", json.dumps(log, indent=1))

    if "vae" in stages:
        train_vae(models, opts, log, t0)
        save()
    ema = None
    if "dit" in stages:
        tp = time.time()
        pool = make_pool(models, opts, opts.pool, _shape_seed(opts.seed, 10 ** 6 - opts.pool) + 7)
        lat = pool["latents"].float()
        scale = float(1.0 / lat.std())
        log["pool"] = {"shapes": opts.pool, "latent_std": float(lat.std()), "latent_mean": float(lat.mean()),
                       "seconds": round(time.time() - tp, 1)}
        print(f"[pool] {opts.pool} shapes in {time.time() - tp:.1f} s; latent std {float(lat.std()):.4f}", flush=True)
        del lat
        ema = train_dit(models, pool, scale, opts, log, t0)
        del pool
        save(ema)
    if "eval" in stages:
        te = time.time()
        src = ema or {k: models[k] for k in ("dit", "conditioner")}
        log["eval"] = evaluate(models["encoder"], models["vae"], src["dit"], src["conditioner"], scale, opts)
        log["eval"]["seconds"] = round(time.time() - te, 1)
        print(json.dumps(log["eval"]), flush=True)
        save(ema)
    return log
