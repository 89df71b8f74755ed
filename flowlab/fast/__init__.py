"""Fast paths for whole Euler trajectories of the toy models, next to the readable reference.

The reference is :func:`flowlab.sampling.sample` with a velocity model: one model call and one update
per step, every intermediate in device memory. The paths here compute the same trajectory::

    x_{i+1} = x_i + (t_{i+1} - t_i) * v(x_i, t_i)        i = 0 .. S - 1, schedule t_0 = t_noise -> t_S = t_data

with everything that depends only on the schedule (not on ``x``) computed once, before the loop:

* **Exact Gaussian mixture** (:func:`gmm_euler`; isotropic components, small ``K``). On an affine path
  ``x = a(t) D + b(t) E`` the component ``k`` of the marginal is ``N(a mu_k, var_k I)`` with
  ``var_k = a^2 s_k^2 + b^2``, and the exact velocity is::

      v(x, t) = sum_k p_k(x) (c_k x + m_k),   p = softmax_k(lw_k + q_k |x - a mu_k|^2)
      lw_k = log w_k - dim/2 log var_k,  q_k = -1 / (2 var_k),
      c_k = (a' a s_k^2 + b' b) / var_k,  m_k = (a' - c_k a) mu_k

  (the same formula as :meth:`flowlab.gmm.GaussianMixture.velocity`, written per component).
  :func:`mixture_tables` evaluates ``lw, q, c, a mu, m`` for every step in float64. On CUDA a Triton
  kernel keeps each particle in registers for the whole trajectory (read ``x`` once, write it once);
  elsewhere a pure-torch loop over the same tables runs.
* **MLP velocity** (:class:`flowlab.models.VelocityMLP`). The time embedding is the same for every
  particle of a step, so the first layer splits into ``x W_x^T + (emb(t_i) W_t^T + b)``: the second
  term is a per-step bias table (:func:`mlp_tables`). Hidden matrix products can run in fp16 / bf16
  (fp32 accumulation) while the state ``x`` and the update stay in fp32. Backends: ``"torch"`` (any
  device), ``"graph"`` (the whole loop captured once as a CUDA graph, particles in chunks) and
  ``"triton"`` (one fused kernel: each block of particles runs every layer of every step on chip, the
  activations in registers as two halves, the weights streamed from L2, SiLU through the hardware tanh).

Measured side by side with the peers by ``benchmarks/toy_peers.py`` (it prints the card).

Time follows the convention passed in (conventional ``sigma``: 1 = noise -> 0 = data; reversed ``t``:
0 = noise -> 1 = data); a model trained in the other straight convention is used through
:func:`flowlab.sampling.flip`. No path synchronises with the host inside the loop. Outputs have ``x``'s
shape, dtype and device; the state is carried in ``promote_types(x.dtype, float32)`` (for fp16 / bf16
inputs that is more accurate than the reference, which rounds ``x`` to its dtype after every step).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..conventions import Convention, get_convention
from ..errors import FlowlabError
from ..gmm import GaussianMixture
from ..models import VelocityMLP, time_embedding
from ..sampling import Flipped
from ..schedules import validate

__all__ = ["triton_available", "MixtureTables", "mixture_tables", "gmm_euler", "MLPTables", "mlp_tables",
           "mlp_euler", "GraphedMLPEuler", "PRECISIONS", "BACKENDS", "SILU_CHOICES"]

LOG2E = 1.0 / math.log(2.0)

#: Matrix-product precisions of the MLP fast path (the state ``x`` is fp32 in all of them).
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

#: Backends: ``auto`` picks ``triton`` on CUDA when Triton imports, else ``torch``.
BACKENDS = ("auto", "torch", "triton", "graph")

#: SiLU forms of the Triton MLP kernel (see :func:`mlp_euler`).
SILU_CHOICES = ("fast", "exact")


def triton_available() -> bool:
    """True when Triton imports and a CUDA device is visible (the fused kernels need both)."""
    if not torch.cuda.is_available():
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    """Host -> device without a host sync (pinned memory, asynchronous copy); other moves as ``.to``."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.contiguous().pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _check_x(x: Tensor, dim: int, who: str) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim != 2 or x.shape[1] != dim:
        got = (x.dtype, tuple(x.shape)) if isinstance(x, Tensor) else type(x).__name__
        raise FlowlabError(f"{who}: x must be a floating tensor of shape (B, {dim}) (samples at t_noise), got {got}")
    if x.shape[0] == 0:
        raise FlowlabError(f"{who}: x has no samples (B = 0)")


def _check_backend(backend: str, x: Tensor, who: str) -> str:
    if backend not in BACKENDS:
        raise FlowlabError(f"{who}: unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "auto":
        return "triton" if x.is_cuda and triton_available() else "torch"
    if backend in ("triton", "graph") and not x.is_cuda:
        raise FlowlabError(f"{who}: backend {backend!r} needs x on a CUDA device, x is on {x.device}; "
                           "use backend='torch' (or 'auto')")
    if backend == "triton" and not triton_available():
        raise FlowlabError(f"{who}: backend 'triton' needs the triton package; install it or use backend='torch'")
    return backend


def _schedule(schedule: Tensor, conv: Convention, check: bool) -> Tensor:
    if check:
        validate(schedule, conv, allow_noop=True)
    elif not isinstance(schedule, Tensor) or schedule.ndim != 1 or schedule.numel() < 2:
        raise FlowlabError("schedule must be a 1-D tensor with at least 2 points")
    return schedule


# ==== exact isotropic Gaussian mixture ==================================================================

@dataclass(frozen=True)
class MixtureTables:
    """Per-step coefficients of the exact mixture velocity (see the module docstring), float64 or as cast.

    Shapes (``S`` steps, ``K`` components, ``dim`` D): ``lw, q, c: (S, K)``, ``ctr, m: (S, K, D)``,
    ``dt: (S,)`` with ``dt[i] = t_{i+1} - t_i`` in the sampling convention's time.
    """

    lw: Tensor
    q: Tensor
    c: Tensor
    ctr: Tensor
    m: Tensor
    dt: Tensor

    def to(self, device: torch.device, dtype: torch.dtype) -> "MixtureTables":
        return MixtureTables(*(getattr(self, f).to(device=device, dtype=dtype)
                               for f in ("lw", "q", "c", "ctr", "m", "dt")))


def _isotropic(gmm: GaussianMixture, who: str) -> tuple[Tensor, Tensor, Tensor]:
    if not isinstance(gmm, GaussianMixture):
        raise FlowlabError(f"{who} needs a flowlab.gmm.GaussianMixture, got {type(gmm).__name__}")
    if not gmm.isotropic:
        raise FlowlabError(f"{who}: the fast path handles isotropic components only (covs given as stds); "
                           "use flowlab.sampling.sample(gmm.velocity_model(convention), ...) for full covariances")
    return gmm.means, gmm.eigvals[:, 0], gmm.weights  # (K, D), (K,) variances s_k^2, (K,)


def mixture_tables(gmm: GaussianMixture, schedule: Tensor, convention: Convention | str) -> MixtureTables:
    """Tables of the exact velocity of ``gmm`` at ``schedule[:-1]`` in ``convention``'s time, in float64 (CPU).

    ``schedule: (S + 1,)`` from ``t_noise`` to ``t_data``; the tables hold the ``S`` evaluation times.
    """
    conv = get_convention(convention)
    mu, s2, w = _isotropic(gmm, "mixture_tables")
    ts = schedule.detach().to("cpu", torch.float64)
    a, b, da, db = (v[:, None] for v in conv.coefficients(ts[:-1]))  # each (S, 1)
    var = a * a * s2[None] + b * b  # (S, K)
    dim = mu.shape[1]
    lw = w.log()[None] - 0.5 * dim * var.log()
    q = -0.5 / var
    c = (da * a * s2[None] + db * b) / var
    ctr = a[:, :, None] * mu[None]  # (S, K, D)
    m = (da - c * a)[:, :, None] * mu[None]
    return MixtureTables(lw=lw, q=q, c=c, ctr=ctr, m=m, dt=ts[1:] - ts[:-1])


def _gmm_euler_torch(x: Tensor, tab: MixtureTables) -> Tensor:
    """The loop over the tables in plain torch, in ``x``'s dtype (any device)."""
    for i in range(tab.dt.shape[0]):
        r = x[:, None, :] - tab.ctr[i]  # (B, K, D)
        p = torch.softmax(tab.lw[i] + tab.q[i] * (r * r).sum(-1), dim=-1)  # (B, K)
        v = (p @ tab.c[i])[:, None] * x + p @ tab.m[i]  # (B, D)
        x = x + tab.dt[i] * v
    return x


def gmm_euler(gmm: GaussianMixture, x: Tensor, schedule: Tensor, convention: Convention | str, *,
              backend: str = "auto", block: int = 512, num_warps: int = 4, check_schedule: bool = True) -> Tensor:
    """Euler trajectory under the exact velocity of an isotropic mixture; returns ``x`` at ``schedule[-1]``.

    The same result as ``sample(gmm.velocity_model(convention), x, schedule, convention)`` (up to round-off).

    Args:
        gmm: a :class:`~flowlab.gmm.GaussianMixture` with isotropic components (``K`` up to ~64).
        x: ``(B, dim)`` samples at ``t_noise``; any floating dtype, any device.
        schedule: ``(S + 1,)`` times from ``t_noise`` to ``t_data`` (no-op steps allowed).
        convention: the sampling convention (any affine one, e.g. ``"conventional"``, ``"reversed"``).
        backend: ``"auto"`` (Triton on CUDA, torch elsewhere), ``"triton"`` or ``"torch"``.
        block, num_warps: Triton launch shape (particles per program, warps per program).
        check_schedule: validate the schedule first (one host sync, before any work).

    Returns ``(B, dim)`` in ``x``'s dtype and device. Triton computes in fp32 (float64 ``x`` goes to the
    torch path, in float64); torch computes in ``promote_types(x.dtype, float32)``.
    """
    conv = get_convention(convention)
    _isotropic(gmm, "gmm_euler")
    _check_x(x, gmm.dim, "gmm_euler")
    if backend == "graph":
        raise FlowlabError("gmm_euler: backend 'graph' is for the MLP; use 'triton', 'torch' or 'auto'")
    backend = _check_backend(backend, x, "gmm_euler")
    if backend == "triton" and x.dtype == torch.float64:
        backend = "torch"
    tab64 = mixture_tables(gmm, _schedule(schedule, conv, check_schedule), conv)
    if backend == "torch":
        work = torch.promote_types(x.dtype, torch.float32)
        tab = MixtureTables(*(_to_device(getattr(tab64, f).to(work), x.device)
                              for f in ("lw", "q", "c", "ctr", "m", "dt")))
        return _gmm_euler_torch(x.to(work), tab).to(x.dtype)
    from ._triton import gmm_euler_triton

    return gmm_euler_triton(x, tab64, block=block, num_warps=num_warps)


# ==== MLP velocity =======================================================================================

@dataclass(frozen=True)
class MLPTables:
    """A :class:`VelocityMLP` unrolled for one schedule (see :func:`mlp_tables`).

    ``bias1: (S, H)`` fp32 first-layer bias per step (``emb(t_i) W_t^T + b_1``); ``w1x: (D, H)`` fp32 (the
    ``x`` columns of the first layer, transposed); ``wh: (L, H, H)`` hidden weights ``[in, out]`` and
    ``bh: (L, H)`` biases in the matmul dtype; ``wo: (H, D)``, ``bo: (D,)`` the output layer in the matmul
    dtype; ``dt: (S,)`` fp32 step sizes with the flip sign folded in (``-dt`` for a flipped model).
    """

    bias1: Tensor
    w1x: Tensor
    wh: Tensor
    bh: Tensor
    wo: Tensor
    bo: Tensor
    dt: Tensor


def _unwrap_mlp(model: object, conv: Convention) -> tuple[VelocityMLP, bool]:
    """(the VelocityMLP, whether its time and velocity are flipped) for a model or ``flip(model)``."""
    flipped = isinstance(model, Flipped)
    inner = model.model if flipped else model
    if not isinstance(inner, VelocityMLP):
        raise FlowlabError(f"the MLP fast path needs a flowlab.models.VelocityMLP (or flip() of one), got "
                           f"{type(inner).__name__}; use flowlab.sampling.sample for other models")
    if not flipped and inner.convention != conv:
        raise FlowlabError(f"the model was trained in the {inner.convention.name!r} convention but sampling was asked "
                           f"in {conv.name!r}; wrap it with flowlab.sampling.flip(model)")
    if flipped and inner.convention == conv:
        raise FlowlabError(f"flip(model) turns a {inner.convention.name!r} model into the other convention, but "
                           f"sampling was asked in {conv.name!r}; pass the model unflipped")
    return inner, flipped


def mlp_tables(model: VelocityMLP | Flipped, schedule: Tensor, convention: Convention | str, *,
               precision: str = "fp16", check_schedule: bool = True) -> MLPTables:
    """Unroll ``model`` over ``schedule``: everything that does not depend on ``x``, computed once (no sync).

    The model reads ``t`` as the reference does: the schedule's values in its dtype (``1 - t`` for
    ``flip(model)``), cast to the weights' dtype, through :func:`~flowlab.models.time_embedding`.
    """
    conv = get_convention(convention)
    if precision not in PRECISIONS:
        raise FlowlabError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    net, flipped = _unwrap_mlp(model, conv)
    _schedule(schedule, conv, check_schedule)
    lin = [m for m in net.net if isinstance(m, torch.nn.Linear)]
    first, hidden, last = lin[0], lin[1:-1], lin[-1]
    p = first.weight
    if p.dtype != torch.float32:
        raise FlowlabError(f"the MLP fast path needs float32 weights, got {p.dtype}; use flowlab.sampling.sample")
    dim = net.config.dim
    cdt = PRECISIONS[precision]
    with torch.no_grad():
        ts = _to_device(schedule.detach(), p.device)
        t_model = (1 - ts[:-1]) if flipped else ts[:-1]
        emb = time_embedding(t_model.to(p.dtype), net.config.time_dim)  # (S, time_dim)
        bias1 = torch.addmm(first.bias, emb, first.weight[:, dim:].T)  # (S, H)
        w1x = first.weight[:, :dim].T.contiguous()
        h = first.weight.shape[0]
        if hidden:
            wh = torch.stack([m.weight.T for m in hidden]).to(cdt).contiguous()
            bh = torch.stack([m.bias for m in hidden]).to(cdt).contiguous()
        else:
            wh, bh = p.new_zeros(0, h, h, dtype=cdt), p.new_zeros(0, h, dtype=cdt)
        wo = last.weight.T.to(cdt).contiguous()
        bo = last.bias.to(cdt).contiguous()
        dt = (ts[1:] - ts[:-1]).to(torch.float32) * (-1.0 if flipped else 1.0)
    return MLPTables(bias1=bias1.contiguous(), w1x=w1x, wh=wh, bh=bh, wo=wo, bo=bo, dt=dt)


def _mlp_velocity(x: Tensor, tab: MLPTables, i: int) -> Tensor:
    """The MLP at step ``i`` from the tables: ``x: (C, D)`` fp32 -> ``v: (C, D)`` fp32."""
    h = torch.nn.functional.silu(torch.addmm(tab.bias1[i], x, tab.w1x)).to(tab.wh.dtype)
    for l in range(tab.wh.shape[0]):
        h = torch.nn.functional.silu(torch.addmm(tab.bh[l], h, tab.wh[l]))
    return torch.addmm(tab.bo, h, tab.wo).float()


def _mlp_euler_chunks(x: Tensor, out: Tensor, tab: MLPTables, chunk: int) -> None:
    """``out = trajectory(x)``, chunk by chunk (each chunk runs all steps while its activations sit in L2)."""
    for s in range(0, x.shape[0], chunk):
        xc = x[s:s + chunk]
        for i in range(tab.dt.shape[0]):
            xc = xc + tab.dt[i] * _mlp_velocity(xc, tab, i)
        out[s:s + chunk] = xc


def mlp_euler(model: VelocityMLP | Flipped, x: Tensor, schedule: Tensor, convention: Convention | str, *,
              precision: str = "fp16", backend: str = "auto", chunk: int = 65536, block: int = 128,
              num_warps: int = 8, num_stages: int = 1, silu: str = "fast", check_schedule: bool = True) -> Tensor:
    """Euler trajectory of a :class:`~flowlab.models.VelocityMLP`; returns ``x`` at ``schedule[-1]``.

    The same result as ``sample(model, x, schedule, convention)`` up to the matmul precision.

    Args:
        model: a ``VelocityMLP`` trained in ``convention``, or ``flip(model)`` of one trained in the other.
        x: ``(B, dim)`` samples at ``t_noise``; the state is fp32 (fp64 input: computed in fp32, returned fp64).
        schedule: ``(S + 1,)`` times from ``t_noise`` to ``t_data``.
        convention: the sampling convention.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` for the hidden and output matrix products (fp32
            accumulation; the first layer and the update are always fp32).
        backend: ``"auto"`` (Triton on CUDA with fp16 / bf16, else torch), ``"torch"``, ``"graph"`` (captures a
            CUDA graph per call: reuse a :class:`GraphedMLPEuler` to pay that once), ``"triton"``.
        chunk: particles per chunk for ``torch`` / ``graph``.
        block, num_warps, num_stages: Triton launch shape.
        silu: the Triton kernel's activation. ``"fast"`` (default): ``h/2 (1 + tanh(h/2))`` with the hardware
            tanh (two fp16 elements an instruction for fp16, fp32 for bf16): one special-function op an element
            instead of two, the same rounding class as the fp16 activations it feeds (twice as fast on an
            H200, benchmarks/toy_peers.py). ``"exact"``: ``h * sigmoid(h)`` in fp32. The torch and graph
            backends always use ``torch.nn.functional.silu``.
        check_schedule: validate the schedule first (one host sync, before any work).

    Returns ``(B, dim)`` in ``x``'s dtype and device.
    """
    conv = get_convention(convention)
    if silu not in SILU_CHOICES:
        raise FlowlabError(f"mlp_euler: silu must be one of {', '.join(SILU_CHOICES)}, got {silu!r}")
    net, _ = _unwrap_mlp(model, conv)
    _check_x(x, net.config.dim, "mlp_euler")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
        raise FlowlabError(f"mlp_euler: chunk must be a positive integer, got {chunk!r}")
    if backend == "auto" and precision == "fp32":
        backend = "torch"
    backend = _check_backend(backend, x, "mlp_euler")
    if net.net[0].weight.device != x.device:
        raise FlowlabError(f"mlp_euler: the model is on {net.net[0].weight.device} but x is on {x.device}; "
                           "move one of them")
    if backend == "triton" and precision == "fp32":
        raise FlowlabError("mlp_euler: the Triton kernel runs fp16 or bf16 matrix products; use precision='fp16' or "
                           "'bf16', or backend='torch' / 'graph' for fp32")
    tab = mlp_tables(model, schedule, conv, precision=precision, check_schedule=check_schedule)
    with torch.no_grad():
        if backend == "graph":
            return GraphedMLPEuler(model, x.shape[0], schedule, conv, precision=precision, chunk=chunk,
                                   check_schedule=False)(x)
        x32 = x.to(torch.float32)
        if backend == "triton":
            from ._triton import mlp_euler_triton

            out = mlp_euler_triton(x32, tab, block=block, num_warps=num_warps, num_stages=num_stages, silu=silu)
        else:
            out = torch.empty_like(x32)
            _mlp_euler_chunks(x32, out, tab, chunk)
    return out.to(x.dtype)


class GraphedMLPEuler:
    """The whole chunked Euler loop of :func:`mlp_euler` captured once as a CUDA graph, replayed per call.

    Built for a fixed batch size ``n``, schedule, convention and precision; ``self(x)`` copies ``x: (n, dim)``
    into the graph's input buffer, replays every step of every chunk (no host involvement) and returns a
    new tensor in ``x``'s dtype. The model's weights are copied into the tables at construction: rebuild
    after changing them.
    """

    def __init__(self, model: VelocityMLP | Flipped, n: int, schedule: Tensor, convention: Convention | str, *,
                 precision: str = "fp16", chunk: int = 65536, check_schedule: bool = True) -> None:
        conv = get_convention(convention)
        net, _ = _unwrap_mlp(model, conv)
        device = net.net[0].weight.device
        if device.type != "cuda":
            raise FlowlabError(f"GraphedMLPEuler needs the model on a CUDA device, it is on {device}")
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise FlowlabError(f"GraphedMLPEuler: n must be a positive integer, got {n!r}")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
            raise FlowlabError(f"GraphedMLPEuler: chunk must be a positive integer, got {chunk!r}")
        self.n, self.dim = n, net.config.dim
        self.tab = mlp_tables(model, schedule, conv, precision=precision, check_schedule=check_schedule)
        self.x_in = torch.randn(n, self.dim, device=device)
        self.x_out = torch.empty_like(self.x_in)
        with torch.no_grad():
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):  # warm-up outside the capture (cuBLAS handles and workspaces)
                _mlp_euler_chunks(self.x_in[:min(n, chunk)], self.x_out[:min(n, chunk)], self.tab, chunk)
            torch.cuda.current_stream(device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                _mlp_euler_chunks(self.x_in, self.x_out, self.tab, chunk)

    def __call__(self, x: Tensor) -> Tensor:
        _check_x(x, self.dim, "GraphedMLPEuler")
        if x.shape[0] != self.n or x.device != self.x_in.device:
            raise FlowlabError(f"GraphedMLPEuler was built for ({self.n}, {self.dim}) on {self.x_in.device}, got "
                               f"{tuple(x.shape)} on {x.device}; build another for this batch")
        self.x_in.copy_(x)
        self.graph.replay()
        return self.x_out.to(x.dtype, copy=True)
