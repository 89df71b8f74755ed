"""Image -> latents -> occupancy volume -> mesh, driven by flowlab's sampler in either convention.

The released DiT is a **reversed-convention** velocity model: ``t`` runs 0 (noise) -> 1 (data) and
``v = D - E``. :class:`DiTVelocity` wraps it as ``model(x, t) -> v`` for :func:`flowlab.sampling.sample`:

* ``convention="reversed"`` samples it as released. With ``exact=True`` (default) it reproduces the
  reference pipeline bit for bit in fp16: the schedule is :func:`flowlab.schedules.hunyuan_compat`
  (``linspace(0, 1, N)`` plus an appended 1.0: the last of the N calls is wasted), the model sees
  ``t`` rounded like the reference (``(1000 t)`` cast to the latents' dtype, then ``/ 1000``), and the
  sampler's Euler update does ``dt * v`` in fp16 and the sum in fp32.
* ``convention="conventional"`` samples ``flip(model)`` along ``to_conventional(schedule)``
  (``sigma = 1 - t``, ``v' = -v``): the same points up to round-off.

Classifier-free guidance runs one batch ``[cond, uncond]`` (uncond = zeros) and combines
``v = v_u + w (v_c - v_u)``; guidance-distilled models ('fast' / 'turbo', ``guidance_embed``) run
batch 1 with ``w`` fed through their guidance embedding instead.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .. import functional as Fn
from ..conventions import CONVENTIONAL, REVERSED, get_convention
from ..errors import FlowlabError, NonFiniteError
from ..sampling import StepInfo, flip, sample
from ..schedules import hunyuan_compat, hunyuan_corrected, hunyuan_turbo, shift_noise_level, to_conventional
from .decode.mesh import Mesh, marching_cubes
from .decode.volume import RELEASE_OCTREE, check_resolution, decode_dense, decode_hierarchical
from .load.checkpoint import ModelFolder
from .models.dit import ShapeDiT
from .models.vae import ShapeVAE

__all__ = ["DiTVelocity", "ShapePipeline", "shape_schedule", "initial_latents", "reference_time", "DECODE_MODES",
           "SAMPLING_CONVENTIONS"]

#: The conventions the shape DiT samples in: as released (reversed), or flipped (conventional).
SAMPLING_CONVENTIONS = (REVERSED, CONVENTIONAL)
#: How :meth:`ShapePipeline.decode_volume` queries the grid; the first is the default (library and CLI alike).
DECODE_MODES = ("hierarchical", "dense")


def reference_time(t: Tensor, dtype: torch.dtype, num_train_timesteps: int = 1000) -> Tensor:
    """The time the reference feeds its DiT: ``(t * 1000).to(dtype) / 1000`` computed in ``dtype``.

    In fp16 this rounds ``t`` (e.g. 0.3333333 -> 0.33325195); in float32 it is ``t`` up to an ulp.
    """
    return (t * num_train_timesteps).to(dtype) / num_train_timesteps


class DiTVelocity:
    """``model(x, t) -> v`` in the REVERSED convention (t = 0 noise, t = 1 data, v = D - E).

    Args:
        dit: the denoiser.
        cond: (B, L, C) image tokens.
        guidance: the CFG scale ``w`` (``v_u + w (v_c - v_u)``); for guidance-distilled models the raw
            ``w`` fed to the guidance embedding. ``None`` (or a negative value, as in the reference):
            no guidance, one conditional call.
        uncond: (B, L, C) unconditional tokens; zeros (the reference's) when None.
        exact: round ``t`` as the reference does (:func:`reference_time`); else pass ``t`` in float32, so
            the time embedding sees the unrounded time (closer to the ODE, no longer bitwise the reference).
    """

    def __init__(self, dit: ShapeDiT, cond: Tensor, *, guidance: float | None = 5.0, uncond: Tensor | None = None,
                 exact: bool = True) -> None:
        _check_guidance(guidance)
        self.dit = dit
        self.exact = exact
        self.distilled = bool(dit.guidance_embed)
        self.guidance = guidance
        if self.distilled and guidance is None:
            raise FlowlabError("this DiT is guidance-distilled (guidance_embed: true): it needs a guidance scale")
        self.cfg = (not self.distilled) and guidance is not None and guidance >= 0
        if self.cfg:
            uncond = torch.zeros_like(cond) if uncond is None else uncond
            self.cond = torch.cat([cond, uncond], dim=0)  # (2B, L, C): [cond, uncond]
        else:
            self.cond = cond
        self.calls = 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        """x: (B, N, 64) at reversed time t: (B,) -> v: (B, N, 64)."""
        self.calls += 1
        t_in = reference_time(t, x.dtype) if self.exact else t.float()
        cond = self.cond.to(x.dtype)
        if self.cfg:
            v = self.dit(torch.cat([x, x]), torch.cat([t_in, t_in]), cond)
            v_cond, v_uncond = v.chunk(2)
            return Fn.cfg(v_cond, v_uncond, self.guidance)
        g = None
        if self.distilled:
            g = torch.full((x.shape[0],), float(self.guidance), dtype=x.dtype, device=x.device)
        return self.dit(x, t_in, cond, guidance=g)


#: Beyond these, a NaN in sampling is blamed on the guidance scale / the image tokens (values of released runs:
#: guidance 1 to 10, DINOv2 tokens |x| < ~50).
GUIDANCE_SANE = 1e4
TOKENS_SANE = 1e4


def _check_guidance(guidance: object) -> None:
    """A CFG scale is None or a finite number (NaN would silently disable CFG, inf overflows every step)."""
    import math

    if guidance is None:
        return
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance):
        raise FlowlabError(f"guidance {guidance!r} is not a finite number; use a CFG scale such as 5.0 "
                           "(1 = the conditional model alone, a negative value or None = no guidance)")


def shape_schedule(steps: int, scheduler: str = "flow", *, pcm_timesteps: int = 100, shift: float = 1.0,
                   wasted_last_step: bool = True) -> Tensor:
    """The schedule in the REVERSED convention, float32, shape (steps + 1,), for ``steps`` model calls.

    ``scheduler="flow"`` with ``wasted_last_step=True``: the reference's :func:`hunyuan_compat`
    (``linspace(0, 1, N)`` plus 1.0: N calls, N - 1 effective steps); with ``False``:
    :func:`hunyuan_corrected` (``linspace(0, 1, N + 1)``: N calls, N effective steps).
    ``"consistency"`` (turbo): :func:`hunyuan_turbo` (no wasted step either way). ``shift`` != 1 applies
    the reference's SD3 formula ``s t / (1 + (s - 1) t)`` to the reversed ``t`` unchanged (which pushes
    steps toward the data).
    """
    if scheduler == "flow":
        ts = hunyuan_compat(steps) if wasted_last_step else hunyuan_corrected(steps)
        if shift != 1.0:
            t64 = torch.from_numpy(np.linspace(0.0, 1.0, steps if wasted_last_step else steps + 1))
            t64 = shift_noise_level(t64, shift)
            ts = torch.cat([t64.float(), torch.ones(1)]) if wasted_last_step else t64.float()
        return ts
    if scheduler == "consistency":
        return hunyuan_turbo(steps, pcm_timesteps)
    raise FlowlabError(f"unknown scheduler {scheduler!r}; 'flow' or 'consistency'")


def initial_latents(shape: tuple[int, ...], seed: int, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """``randn(shape)`` from a CPU generator seeded with ``seed`` (results do not depend on the device)."""
    g = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=g, dtype=dtype).to(device)


def _oom(what: str, hint: str) -> FlowlabError:
    return FlowlabError(f"CUDA out of memory during {what}; {hint}, or run on the CPU (device='cpu')")


@dataclass
class ShapePipeline:
    """DiT + VAE (+ optional image conditioner), the schedule kind, device and dtype.

    ``octree``: the grid resolution :meth:`decode_volume` uses by default; :func:`flowlab.shape.load_pipeline`
    sets it from the model folder (:func:`flowlab.shape.load.config.octree_default`: 128 for the mini model,
    else the release's 384).
    """

    dit: ShapeDiT
    vae: ShapeVAE
    conditioner: nn.Module | None = None
    scheduler: str = "flow"
    pcm_timesteps: int = 100
    shift: float = 1.0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float16
    folder: ModelFolder | None = None
    image_size: int = 512
    border_ratio: float = 0.15
    octree: int = RELEASE_OCTREE

    def __post_init__(self) -> None:
        self.dit.to(device=self.device, dtype=self.dtype).eval()
        self.vae.to(device=self.device, dtype=self.dtype).eval()
        if self.conditioner is not None:
            self.conditioner.to(device=self.device, dtype=self.dtype).eval()

    # ---- conditioning -----------------------------------------------------------------------
    def load_conditioner(self) -> nn.Module:
        """Build the image conditioner from the folder's config and weights (needs transformers)."""
        if self.conditioner is None:
            if self.folder is None:
                raise FlowlabError("no image conditioner: this pipeline was built without one; pass an embedding")
            from .load.folder import load_conditioner

            self.conditioner = load_conditioner(self.folder)
            self.conditioner.to(device=self.device, dtype=self.dtype).eval()
        return self.conditioner

    @torch.no_grad()
    def encode_image(self, image: "str | os.PathLike | object | Tensor") -> Tensor:
        """A path / PIL image, or a (B, 3, H, W) tensor in [-1, 1] -> cond tokens (B, L, C)."""
        from .models.conditioner import load_image

        if isinstance(image, Tensor):
            pixels = image
        elif self._patch_conditioner():  # the mini model reads images its own way (no recentring)
            from .models.image_encoder import load_mini_image

            pixels = load_mini_image(image, self._patch_conditioner())
        else:
            pixels = load_image(image, self.image_size, self.border_ratio)
        return self.load_conditioner()(pixels.to(self.device))

    def _patch_conditioner(self) -> int:
        """The input size of a flowlab PatchImageEncoder conditioner (the mini model's), else 0."""
        if self.conditioner is not None:
            return int(getattr(getattr(self.conditioner, "main_image_encoder", None), "patch_size", 0) and
                       self.conditioner.main_image_encoder.image_size)
        section = (self.folder.config.get("conditioner") or {}) if self.folder is not None else {}
        enc = (section.get("params") or {}).get("main_image_encoder") or {}
        return int((enc.get("kwargs") or {}).get("image_size", 64)) if enc.get("type") == "PatchImageEncoder" else 0

    @torch.no_grad()
    def encode_views(self, views: dict) -> Tensor:
        """Multiview models (v2-mv): {'front' | 'left' | 'back' | 'right': image} -> cond tokens (1, V L, C).

        Views are sorted front, left, back, right (view indices 0..3) as the reference does; each gets the
        fixed sinusoidal view embedding of its index.
        """
        from .models.conditioner import load_image

        order = ("front", "left", "back", "right")
        unknown = sorted(set(views) - set(order))
        if unknown or not views:
            raise FlowlabError(f"views must be a non-empty mapping with keys among {', '.join(order)}; got {sorted(views)}")
        cond_model = self.load_conditioner()
        if getattr(cond_model, "view_num", None) is None:
            raise FlowlabError("this model's conditioner is single-view; pass one image (encode_image)")
        idx = [order.index(k) for k in order if k in views]
        pixels = torch.stack([load_image(views[order[i]], self.image_size, self.border_ratio)[0] for i in idx])
        return cond_model(pixels[None].to(self.device), view_idxs=idx)

    def check_embedding(self, cond: Tensor) -> Tensor:
        """Validate a precomputed (B, L, context_in_dim) embedding and move it to the pipeline."""
        from .load.embedding import check_tokens

        cond = check_tokens(cond, "embedding", width=self.dit.config.context_in_dim)
        return cond.to(self.device, self.dtype)

    # ---- sampling ---------------------------------------------------------------------------
    def schedule(self, steps: int, *, wasted_last_step: bool = True) -> Tensor:
        """Reversed-convention schedule for ``steps`` model calls (see :func:`shape_schedule`)."""
        return shape_schedule(steps, self.scheduler, pcm_timesteps=self.pcm_timesteps, shift=self.shift,
                              wasted_last_step=wasted_last_step)

    @torch.no_grad()
    def sample_latents(self, cond: Tensor, *, steps: int = 50, guidance: float | None = 5.0,
                       convention: str = "reversed", seed: int = 0, exact: bool = True,
                       wasted_last_step: bool | None = None,
                       latents: Tensor | None = None,
                       callback: Callable[[StepInfo], None] | None = None) -> Tensor:
        """Sample latents (B, num_latents, 64) from noise for image tokens ``cond`` (B, L, C).

        ``convention`` is 'reversed' (as released) or 'conventional' (through :func:`flowlab.sampling.flip`).
        ``exact=True`` reproduces the reference: fp16-rounded t and, unless ``wasted_last_step`` says
        otherwise, its schedule whose last of ``steps`` calls is wasted. ``wasted_last_step=False`` gives
        ``steps`` effective steps from ``steps`` calls (what ``flowlab shape`` does by default).
        The callback sees x, t, v and the predictions in that convention.
        """
        from ..limits import MAX_STEPS, check_count, check_seed

        conv = get_convention(convention)
        if conv not in SAMPLING_CONVENTIONS:
            raise FlowlabError(f"convention {conv.name!r}: the shape DiT runs in "
                               + " or ".join(repr(c.name) for c in SAMPLING_CONVENTIONS))
        check_count(steps, "steps", maximum=MAX_STEPS, why="each step is a DiT call; 50 is the release's default")
        check_seed(seed, "seed")
        _check_guidance(guidance)
        cond = self.check_embedding(cond)
        b = cond.shape[0]
        want = (b, *self.vae.latent_shape)
        if latents is None:
            latents = initial_latents(want, seed, self.dtype, self.device)
        elif not isinstance(latents, Tensor) or tuple(latents.shape) != want:
            got = tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
            raise FlowlabError(f"latents has shape {got}; expected {want} (batch of cond, num_latents, embed_dim): "
                               "pass None to start from seeded noise")
        else:
            latents = latents.to(self.device, self.dtype)
        model = DiTVelocity(self.dit, cond, guidance=guidance, exact=exact)
        ts = self.schedule(steps, wasted_last_step=exact if wasted_last_step is None else wasted_last_step)
        try:
            if conv is REVERSED:
                return sample(model, latents, ts, REVERSED, callback=callback)
            return sample(flip(model), latents, to_conventional(ts), CONVENTIONAL, callback=callback)
        except torch.cuda.OutOfMemoryError:
            raise _oom("sampling", "use a smaller batch, or a smaller model (mini)") from None
        except NonFiniteError:
            self._blame_inputs(cond, latents, guidance)
            raise

    def _blame_inputs(self, cond: Tensor, latents: Tensor, guidance: float | None = None) -> None:
        """After a NaN in sampling: name a non-finite or overflowing input (weights, tokens, latents, guidance)
        before the time convention."""
        if not bool(torch.isfinite(latents).all()):
            raise NonFiniteError("the initial latents contain NaN or inf; start from finite noise (latents=None)")
        if guidance is not None and abs(guidance) > GUIDANCE_SANE:
            raise FlowlabError(f"guidance {guidance:g} made the velocity overflow (v_u + w (v_c - v_u) exceeds the "
                               f"{self.dtype} range); use a CFG scale such as 5.0 (the releases use 1 to 10)")
        peak = float(cond.detach().abs().max()) if cond.numel() else 0.0
        if peak > TOKENS_SANE:
            raise FlowlabError(f"the image tokens reach |{peak:.3g}|, far outside what an image encoder produces "
                               f"(|value| < {TOKENS_SANE:g}), and overflowed the DiT; pass an embedding made by the "
                               "model's conditioner (or --image)")
        for label, module in (("DiT", self.dit),):
            for name, p in module.named_parameters():
                if not bool(torch.isfinite(p).all()):
                    where = self.folder.weights if self.folder is not None else "the model"
                    raise NonFiniteError(f"the {label} weight {name!r} contains NaN or inf, so every velocity is NaN; "
                                       f"the weights in {where} are damaged: download them again")
        if self.dtype == torch.float16:
            raise NonFiniteError("sampling produced NaN or inf although the weights and tokens are finite: fp16 "
                                 "overflowed; load the pipeline with dtype=torch.float32 (or dtype=torch.bfloat16)")

    # ---- decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def decode_volume(self, latents: Tensor, *, octree: int | None = None, decode: str = DECODE_MODES[0],
                      chunk_size: int = 8000, bounds: float = 1.01, progress: Callable[[int], None] | None = None,
                      kv_topk: int | None = None) -> Tensor:
        """Latents (B, N, 64) -> logits (B, R + 1, R + 1, R + 1) float32 (positive inside), R = ``octree``.

        ``octree``: None takes the pipeline's :attr:`octree` (the model folder's default). ``decode``:
        'hierarchical' (default: coarse to fine, the network only near the surface; the same mesh) or 'dense'
        (the reference: every grid point; use it where the logits far from the surface matter).
        ``kv_topk``: with 'hierarchical', each group of 1024 points attends only to its ``kv_topk`` most
        important latent tokens (:func:`flowlab.shape.decode.volume.query_selected`); None attends to all.
        """
        if decode not in DECODE_MODES:
            raise FlowlabError(f"unknown decode {decode!r}; one of {', '.join(map(repr, DECODE_MODES))}")
        if kv_topk is not None and decode != "hierarchical":
            raise FlowlabError("adaptive key / value selection (kv_topk) needs decode='hierarchical'")
        from ..limits import check_count

        want = tuple(self.vae.latent_shape)
        if not isinstance(latents, Tensor) or latents.ndim != 3 or tuple(latents.shape[1:]) != want \
                or latents.shape[0] < 1:
            got = tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
            raise FlowlabError(f"latents has shape {got}; expected (B, {want[0]}, {want[1]}) as sample_latents "
                               "returns them")
        octree = check_resolution(self.octree if octree is None else octree, latents.shape[0])
        check_count(chunk_size, "chunk_size")
        try:
            tokens = self.vae.decode_latents(latents.to(self.device, self.dtype))
            geo = self.vae.geo_decoder
            if kv_topk is not None:
                from .decode.fast import decode_hierarchical_fast, selected_query

                if kv_topk < 1:
                    raise FlowlabError(f"kv_topk must be >= 1 (or None: all tokens), got {kv_topk}")
                chunk = -(-chunk_size // 1024) * 1024

                def query(points, k, v, _q=selected_query(geo, kv_topk)):
                    out = _q(points, k, v)
                    if progress is not None:
                        progress(points.shape[1])
                    return out
                query.group = 1024
                return decode_hierarchical_fast(geo, tokens, octree, bounds=bounds, chunk_size=chunk, query=query)
            fn = decode_hierarchical if decode == "hierarchical" else decode_dense
            return fn(geo, tokens, octree, bounds=bounds, chunk_size=chunk_size, progress=progress)
        except torch.cuda.OutOfMemoryError:
            raise _oom("volume decoding", f"try a smaller octree= (now {octree}) or chunk_size= (now {chunk_size})") from None

    def mesh(self, logits: Tensor, *, level: float = 0.0, bounds: float = 1.01, method: str = "skimage") -> Mesh:
        """One volume (R + 1,)^3 or a batch of one -> :class:`Mesh` (FlowlabError when there is no surface).

        ``method``: 'skimage' (the reference: scikit-image's lewiner on the CPU), 'torch'
        (:func:`flowlab.shape.decode.isosurface.marching_cubes_torch`, where the volume is: on a GPU it never
        goes to the CPU), or 'auto' (torch for a CUDA volume, else skimage).
        """
        if logits.ndim == 4:
            if logits.shape[0] != 1:
                raise FlowlabError(f"mesh() takes one volume; got a batch of {logits.shape[0]}: call it per item "
                                   "(pipe.mesh(logits[i]))")
            logits = logits[0]
        if method == "auto":
            method = "torch" if logits.is_cuda else "skimage"
        if method == "torch":
            from .decode.isosurface import marching_cubes_torch

            return marching_cubes_torch(logits, level=level, bounds=bounds)
        if method != "skimage":
            raise FlowlabError(f"unknown marching-cubes method {method!r}; 'skimage', 'torch' or 'auto'")
        return marching_cubes(logits, level=level, bounds=bounds)
