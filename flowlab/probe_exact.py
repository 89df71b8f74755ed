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
LAND_TOL = 0.15      # rms distance (data units, data spread ~1) under which the loop landed on the exact answer
UNIQUE_RATIO = 4.0   # the runner-up must miss by this factor more (wrong outputs miss by 0.3 .. 1.5)
ID_STEPS = 32        # steps used to tell the hypotheses apart (a first-order solver is then within ~0.05)
_N_POINTS = 128


# ---- repeated warnings, shown once ----------------------------------------------------------------------

class _Once(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage())
        self.seen[key] = self.seen.get(key, 0) + 1
        return self.seen[key] == 1


_ACTIVE: list[_Once] = []  # the outermost quiet_repeats owns the record (nested probes share it)


@contextlib.contextmanager
def quiet_repeats() -> Iterator[None]:
    """Inside: a warning (``warnings`` or ``logging``) that a probed library repeats is shown once only.

    The warning filters in force are kept (nothing they hide is turned on); only repeats are dropped.
    """
    if _ACTIVE:
        yield
        return
    once = _Once()
    handlers = list(logging.getLogger().handlers)
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers += logger.handlers
    for h in handlers:
        h.addFilter(once)
    _ACTIVE.append(once)
    try:
        with warnings.catch_warnings():
            shown = warnings.showwarning
            seen: set = set()

            def show_once(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
                key = (str(message), category, filename, lineno)
                if key not in seen:
                    seen.add(key)
                    shown(message, category, filename, lineno, file, line)

            warnings.showwarning = show_once  # the filters in force still decide what is shown at all
            yield
    finally:
        _ACTIVE.pop()
        for h in handlers:
            h.removeFilter(once)


# ---- the exact model -----------------------------------------------------------------------------------

def probe_mixture() -> GaussianMixture:
    """A 2-D mixture with no point or mirror symmetry: unequal weights and variances, no mean on an axis of another."""
    means = torch.tensor([[1.1, -0.45], [-0.8, 0.7], [0.25, 1.35]], dtype=torch.float64)
    covs = torch.tensor([0.24, 0.32, 0.19], dtype=torch.float64)  # isotropic stds, unequal (fast exact posterior)
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


def _exact_solution(gmm: GaussianMixture, x: Tensor, a: float, b: float, steps: int = 100) -> Tensor:
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


def next_sample(out: object, where: str = "step") -> Tensor:
    """The next sample from whatever a scheduler's ``step`` returned: a tensor, a tuple whose first item is
    it, or an object with ``.prev_sample`` (diffusers)."""
    if isinstance(out, Tensor):
        return out
    prev = getattr(out, "prev_sample", None)
    if isinstance(prev, Tensor):
        return prev
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise FlowlabError(f"{where} returned {type(out).__name__}; expected the next sample (a tensor, a tuple whose "
                       "first item is it, or an object with .prev_sample)")


def _run(base: object, set_kwargs: dict, path: _Path, output: str, gmm: GaussianMixture, noise: Tensor,
         refs: dict | None = None) -> _Run | None:
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
        x_new = next_sample(sched.step(out, t, x))
        if torch.equal(x_new, x):
            noop.append(i)
        calls.append((float(t), ab[0], ab[1]))
        x = x_new
    if start is None or not bool(torch.isfinite(x).all()):
        return None
    key = (path.name, start[1], tuple(sorted(set_kwargs.items())))
    cache = refs if refs is not None else {}
    if key not in cache or not torch.equal(cache[key][0], start[0]):
        cache[key] = (start[0], _exact_solution(gmm, start[0], *start[1]))
    ref = cache[key][1]
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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest and leaves the other cores alone
    try:
        return _drive(scheduler, set_kwargs, order_steps, gmm, noise)
    finally:
        torch.set_num_threads(threads)


def _drive(scheduler: object, set_kwargs: dict, order_steps: tuple[int, int] | None, gmm: GaussianMixture,
           noise: Tensor) -> ExactDrive:
    results: dict[tuple[int, str], _Run] = {}
    refs: dict = {}  # exact solutions, per path and start (the same for every output)
    paths = _paths(scheduler)
    user_kwargs = set_kwargs
    if "num_inference_steps" in set_kwargs:
        set_kwargs = {**set_kwargs, "num_inference_steps": max(int(set_kwargs["num_inference_steps"]), ID_STEPS)}
    with quiet_repeats(), torch.no_grad():
        for pi, path in enumerate(paths):
            for output in OUTPUTS:
                try:
                    r = _run(scheduler, set_kwargs, path, output, gmm, noise, refs)
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
        mine = _run(scheduler, user_kwargs, paths[pi], out, gmm, noise, refs) if user_kwargs is not set_kwargs else best
    path = paths[pi]
    mine = mine or best
    return ExactDrive(path.name, path.kind, path.scale if path.kind != "vp" else None, out, best.error, runner, cands,
                      mine.calls, mine.noop_calls, order)


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


# ---- from a drive to the inspector's card ---------------------------------------------------------------

_FORMULAS = {  # output -> (model output, data prediction, noise prediction); VP in alpha_t = sqrt(alphabar_t)
    ("flow", "E - D"): ("E - D", "x - sigma*v", "x + (1 - sigma)*v"),
    ("flow", "epsilon"): ("E (the noise epsilon)", "(x - sigma*eps) / (1 - sigma)", "eps (the output itself)"),
    ("flow", "data"): ("D (the data: x0 / sample prediction)", "x0 (the output itself)", "(x - (1 - sigma)*x0) / sigma"),
    ("flow_reversed", "D - E"): ("D - E", "x + (1 - t)*v", "x - t*v"),
    ("flow_reversed", "epsilon"): ("E (the noise epsilon)", "(x - (1 - t)*eps) / t", "eps (the output itself)"),
    ("flow_reversed", "data"): ("D (the data: x0 / sample prediction)", "x0 (the output itself)", "(x - t*x0) / (1 - t)"),
    ("vp", "epsilon"): ("E (the noise epsilon)", "(x - sigma_t*eps) / alpha_t", "eps (the output itself)"),
    ("vp", "data"): ("D (the data: x0 / sample prediction)", "x0 (the output itself)", "(x - alpha_t*x0) / sigma_t"),
    ("vp", "v"): ("alpha_t*E - sigma_t*D (v-prediction)", "alpha_t*x - sigma_t*v", "sigma_t*x + alpha_t*v"),
}
_CONVENTION = {"flow": "conventional", "flow_reversed": "reversed",
               "vp": "variance preserving"}
_VP_NOTE = ("variance preserving path x = alpha_t D + sigma_t E with alpha_t^2 = alphas_cumprod[t] (DDPM / SD 1.x), "
            "the model seeing x as the scheduler's scale_model_input gives it")


def card_fields(drive: ExactDrive, sched: object) -> dict:
    """Inspection fields from a successful drive (``drive.output`` not ``None``)."""
    from .inspector import _fit_shift

    ts = [c[0] for c in drive.calls]
    fields: dict = {"direction": "decreasing" if ts[0] > ts[-1] else "increasing" if ts[-1] > ts[0] else None,
                    "noop_steps": drive.noop_calls, "effective_steps": len(ts) - len(drive.noop_calls),
                    "model_time_scale": drive.time_scale, "convention": _CONVENTION[drive.kind]}
    formulas = _FORMULAS.get((drive.kind, drive.output))
    if formulas is None:
        formulas = (drive.output, None, None)
    fields["model_output"], fields["data_prediction"], fields["noise_prediction"] = formulas
    if drive.kind in ("flow", "flow_reversed"):
        levels = sorted({round(c[2], 9) for c in drive.calls} | {0.0}, reverse=True)  # noise levels b, 1 -> 0
        sig = getattr(sched, "sigmas", None)
        if drive.kind == "flow" and isinstance(sig, Tensor) and sig.ndim == 1 and 0 <= float(sig.min()) <= float(
                sig.max()) <= 1 and abs(float(sig[0]) - levels[0]) < 5e-3:
            levels = sorted({round(float(v), 7) for v in sig}, reverse=True)  # the scheduler's own (unrounded) levels
        u = torch.tensor(levels, dtype=torch.float64)
        fields["times"] = tuple(levels) if drive.kind == "flow" else tuple(1 - v for v in levels)
        for cut in (u, u[:-1]):
            if cut.numel() >= 4:
                s, r = _fit_shift(cut)
                if r <= 1e-3:
                    fields["shift"] = s
                    break
    return fields


def drive(scheduler: object, set_kwargs: dict, source: str, declared_order: int | None):
    """The inspector's card for a scheduler whose step is not affine: drive it with the exact model."""
    from .inspector_card import Inspection

    d = drive_exact(scheduler, set_kwargs)
    head = ("its step is not affine in (sample, model_output) for one call: it uses earlier model outputs "
            f"(a multistep / higher-order solver{f', order {declared_order}' if declared_order else ''}), so it was "
            "driven like a pipeline drives it, with an exact model (a Gaussian mixture) under every hypothesis of "
            "time map and model output")
    ev = "; ".join(f"{name}: {err:.3g}" for name, err in d.candidates[:3])
    if d.output is None:
        why = (f"no hypothesis lands on the exact answer alone (closest, by rms distance: {ev}); no convention derived "
               "(a step that clips, adds noise, or a time map flowlab does not know)")
        return Inspection(source=source, n_calls=len(d.calls), steps=(), affine=False, euler=False,
                          findings=(head, why), driven=True, solver_order=declared_order, candidates=d.candidates)
    sched = copy.deepcopy(scheduler)
    sched.set_timesteps(**set_kwargs)
    fields = card_fields(d, sched)
    notes = [head, f"the exact model's output {d.output!r} under the {d.path} time map lands on the exact answer "
             f"(rms distance {d.error:.3g} at {ID_STEPS}+ steps; the next best misses by {d.runner_up[1]:.3g})"
             if d.runner_up else f"{d.output!r} lands on the exact answer"]
    if d.kind == "vp":
        notes.append(_VP_NOTE)
    n = len(d.calls)
    for i in d.noop_calls:
        notes.append(f"model call {i} is a no-op: the sample does not change, a wasted call ({n} calls, "
                     f"{n - len(d.noop_calls)} effective)")
    if fields.get("shift") is not None and abs(fields["shift"] - 1) > 1e-3:
        s = fields["shift"]
        notes.append(f"shift {s:.4f} (= exp({math.log(s):.4f})): " + ("steps crowd toward noise" if s > 1 else
                                                                      "steps crowd toward data"))
    return Inspection(source=source, n_calls=n, steps=(), affine=False, euler=False, findings=tuple(notes),
                      driven=True, solver_order=declared_order, measured_order=d.measured_order,
                      candidates=d.candidates, **fields)
