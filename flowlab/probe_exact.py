"""Drive a scheduler with an EXACT model and read off what it expects (multistep and second-order ones too).

The affine probe of :mod:`flowlab.inspector` needs a step that depends on this call only. Multistep
(DPM-Solver++, UniPC) and second-order (Heun) schedulers remember earlier model outputs, so their step
is not affine in one call. They are driven instead, as a pipeline drives them, with a model whose
answer is known in closed form: an asymmetric Gaussian mixture (:mod:`flowlab.gmm`), for which the
posterior means ``E[D | x]`` and ``E[E | x]`` of ``x = a D + b E`` are exact. Each hypothesis

* a *path*: how the timestep the scheduler passes maps to ``(a, b)`` (straight path with noise level
  ``t / K`` or ``1 - t / K``, ``K`` = 1 or ``num_train_timesteps``; the variance-preserving path of
  the scheduler's own ``alphas_cumprod``), and
* an *output*: ``E - D`` (flow velocity in sigma), ``D - E`` (velocity in t), ``epsilon`` (``E``),
  ``data`` (``D``), ``v`` (``a E - b D``)

gives an exact model; the loop's final sample is compared with the exact solution of the probability
flow ODE from the same start (RK4, float64; every Gaussian path has the same noise-to-data map in
``x / (a + b)``). The hypothesis that lands on it, and only it, is what the scheduler expects.
Running the winner at two step counts measures the solver's order of accuracy.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor

from .errors import FlowlabError
from .gmm import GaussianMixture

__all__ = ["quiet_repeats", "ExactDrive", "drive_exact", "probe_mixture", "OUTPUTS"]

#: Model outputs tried, as functions of (E[D|x], E[E|x], a, b).
OUTPUTS: dict[str, Callable[[Tensor, Tensor, float, float], Tensor]] = {
    "E - D": lambda d, e, a, b: e - d,
    "D - E": lambda d, e, a, b: d - e,
    "epsilon": lambda d, e, a, b: e,
    "data": lambda d, e, a, b: d,
    "v": lambda d, e, a, b: a * e - b * d,
}
LAND_TOL = 0.02      # rms distance (data units, data spread ~1) under which the loop landed on the exact answer
UNIQUE_RATIO = 5.0   # the runner-up must miss by this factor more
_N_POINTS = 256


# ---- repeated warnings, shown once ----------------------------------------------------------------------

class _Once(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage())
        self.seen[key] = self.seen.get(key, 0) + 1
        return self.seen[key] == 1


@contextlib.contextmanager
def quiet_repeats() -> Iterator[None]:
    """Inside: a warning (``warnings`` or ``logging``) that a probed library repeats is shown once only."""
    once = _Once()
    handlers = list(logging.getLogger().handlers)
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers += logger.handlers
    for h in handlers:
        h.addFilter(once)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("once")
            yield
    finally:
        for h in handlers:
            h.removeFilter(once)


# ---- the exact model -----------------------------------------------------------------------------------

def probe_mixture() -> GaussianMixture:
    """A 2-D mixture with no point or mirror symmetry: unequal weights, full and unequal covariances."""
    means = torch.tensor([[1.1, -0.45], [-0.8, 0.7], [0.25, 1.35]], dtype=torch.float64)
    covs = torch.tensor([[[0.09, 0.03], [0.03, 0.05]], [[0.04, -0.01], [-0.01, 0.12]], [[0.06, 0.0], [0.0, 0.03]]],
                        dtype=torch.float64)
    return GaussianMixture(means, covs, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))


@dataclass(frozen=True)
class _Path:
    name: str
    kind: str          # "flow" (noise level t/K), "flow_reversed" (1 - t/K), "vp" (alphas_cumprod)
    scale: float
    table: Tensor | None = None  # vp: sigma_ve per integer timestep

    def coeffs(self, t: float) -> tuple[float, float] | None:
        if self.kind == "vp":
            n = self.table.numel()
            if not 0 <= t <= n - 1:
                return None
            lo = min(int(math.floor(t)), n - 2)
            w = t - lo
            sve = float(self.table[lo] * (1 - w) + self.table[lo + 1] * w)
            a = 1 / math.sqrt(1 + sve * sve)
            return a, sve * a
        u = t / self.scale
        if not -1e-9 <= u <= 1 + 1e-9:
            return None
        u = min(max(u, 0.0), 1.0)
        return (1 - u, u) if self.kind == "flow" else (u, 1 - u)


def _paths(sched: object) -> list[_Path]:
    cfg = getattr(sched, "config", None)
    n_train = getattr(cfg, "num_train_timesteps", None) if cfg is not None else None
    scales = sorted({1.0} | ({float(n_train)} if isinstance(n_train, int) and n_train > 1 else set()))
    out = [_Path(f"{kind}, K = {k:g}", kind, k) for k in scales for kind in ("flow", "flow_reversed")]
    ac = getattr(sched, "alphas_cumprod", None)
    if isinstance(ac, Tensor) and ac.ndim == 1 and ac.numel() > 1:
        ac = ac.double().clamp(1e-12, 1.0)
        out.append(_Path("variance preserving (alphas_cumprod)", "vp", 1.0, ((1 - ac) / ac).sqrt()))
    return out


def _exact_solution(gmm: GaussianMixture, x: Tensor, a: float, b: float, steps: int = 400) -> Tensor:
    """The probability-flow ODE from ``x = a D + b E`` to the data, in ``y = x / (a + b)``, noise level s."""
    s0 = b / (a + b)
    y = x.double() / (a + b)
    if s0 <= 0:
        return y

    def vel(y: Tensor, s: float) -> Tensor:
        d, e = gmm._posterior(y, torch.tensor([1 - s], dtype=torch.float64), torch.tensor([s], dtype=torch.float64))
        return e - d

    h = -s0 / steps
    for k in range(steps):
        s = s0 + k * h
        k1 = vel(y, s)
        k2 = vel(y + h / 2 * k1, s + h / 2)
        k3 = vel(y + h / 2 * k2, s + h / 2)
        k4 = vel(y + h * k3, s + h)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


@dataclass(frozen=True)
class _Run:
    error: float
    calls: tuple[tuple[float, float, float], ...]   # (timestep, a, b) per model call
    noop_calls: tuple[int, ...]


def _next_sample(out: object) -> Tensor:
    if isinstance(out, Tensor):
        return out
    prev = getattr(out, "prev_sample", None)
    if isinstance(prev, Tensor):
        return prev
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise FlowlabError(f"step returned {type(out).__name__}; expected the next sample (a tensor, a tuple whose first "
                       "item is it, or an object with .prev_sample)")


def _run(base: object, set_kwargs: dict, path: _Path, output: str, gmm: GaussianMixture, noise: Tensor) -> _Run | None:
    sched = copy.deepcopy(base)
    sched.set_timesteps(**set_kwargs)
    x = noise * float(getattr(sched, "init_noise_sigma", 1.0))
    calls, noop, start = [], [], None
    for i, t in enumerate(list(sched.timesteps)):
        ab = path.coeffs(float(t))
        if ab is None:
            return None
        scale_in = getattr(sched, "scale_model_input", None)
        xin = scale_in(x, t) if callable(scale_in) else x
        if start is None:
            start = (xin.double().clone(), ab)
        d, e = gmm._posterior(xin.double(), torch.tensor([ab[0]], dtype=torch.float64),
                              torch.tensor([ab[1]], dtype=torch.float64))
        out = OUTPUTS[output](d, e, ab[0], ab[1]).to(x.dtype)
        x_new = _next_sample(sched.step(out, t, x))
        if torch.equal(x_new, x):
            noop.append(i)
        calls.append((float(t), ab[0], ab[1]))
        x = x_new
    if start is None or not bool(torch.isfinite(x).all()):
        return None
    ref = _exact_solution(gmm, start[0], *start[1])
    err = float((x.double() - ref).pow(2).sum(-1).mean().sqrt())
    return _Run(err if math.isfinite(err) else math.inf, tuple(calls), tuple(noop))


@dataclass(frozen=True)
class ExactDrive:
    """What driving with the exact model found. ``path`` / ``output`` are ``None`` when nothing landed."""

    path: str | None
    kind: str | None
    time_scale: float | None
    output: str | None
    error: float
    runner_up: tuple[str, float] | None
    candidates: tuple[tuple[str, float], ...]
    calls: tuple[tuple[float, float, float], ...]
    noop_calls: tuple[int, ...]
    measured_order: float | None


def drive_exact(scheduler: object, set_kwargs: dict, *, order_steps: tuple[int, int] | None = (8, 16),
                seed: int = 0) -> ExactDrive:
    """Try every (path, output) hypothesis on ``scheduler`` (deep-copied), schedule ``set_timesteps(**set_kwargs)``."""
    gmm = probe_mixture()
    noise = torch.randn(_N_POINTS, gmm.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    noise = noise.float()
    results: dict[tuple[int, str], _Run] = {}
    paths = _paths(scheduler)
    with quiet_repeats(), torch.no_grad():
        for pi, path in enumerate(paths):
            for output in OUTPUTS:
                try:
                    r = _run(scheduler, set_kwargs, path, output, gmm, noise)
                except FlowlabError:
                    raise
                except Exception:  # the scheduler failed on this hypothesis's outputs (e.g. NaN guards)
                    r = None
                if r is not None:
                    results[(pi, output)] = r
        ranked = sorted(results.items(), key=lambda kv: kv[1].error)
        cands = tuple((f"{paths[pi].name}: {o}", r.error) for (pi, o), r in ranked)
        if not ranked:
            return ExactDrive(None, None, None, None, math.inf, None, (), (), (), None)
        (pi, out), best = ranked[0]
        runner = cands[1] if len(cands) > 1 else None
        if not (best.error <= LAND_TOL and (runner is None or runner[1] >= UNIQUE_RATIO * best.error)):
            return ExactDrive(None, None, None, None, best.error, runner, cands, best.calls, best.noop_calls, None)
        order = _measure_order(scheduler, set_kwargs, paths[pi], out, gmm, noise, order_steps)
    path = paths[pi]
    return ExactDrive(path.name, path.kind, path.scale if path.kind != "vp" else None, out, best.error, runner, cands,
                      best.calls, best.noop_calls, order)


def _measure_order(sched: object, set_kwargs: dict, path: _Path, output: str, gmm: GaussianMixture, noise: Tensor,
                   order_steps: tuple[int, int] | None) -> float | None:
    """``log2(error(n) / error(2n))``: the solver's observed order of accuracy (set_timesteps(n) schedules only)."""
    if order_steps is None or "num_inference_steps" not in set_kwargs or set(set_kwargs) - {"num_inference_steps", "mu"}:
        return None
    errs = []
    for n in order_steps:
        r = _run(sched, {**set_kwargs, "num_inference_steps": n}, path, output, gmm, noise)
        if r is None or not r.error > 0:
            return None
        errs.append(r.error)
    return math.log(errs[0] / errs[1]) / math.log(order_steps[1] / order_steps[0])
