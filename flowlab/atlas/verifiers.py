"""Each card's verifier: the system's own code next to flowlab's on the same inputs, as Measurement rows;
the tables notebook 05 prints; the scheduler fixtures."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from .. import functional as F
from ..conventions import CONVENTIONAL, REVERSED
from ..errors import FlowlabError
from ..schedules import shift_noise_level
from .cards import (_CFG_W, CARDS, card, ddim_flow_time, ddim_flow_velocity, ddim_to_flow, diffusers_pred_x0,
                    diffusers_terminal_sigma, load_k_diffusion_sampling, probe_network, require)


# ---- measurements ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measurement:
    """One executed check of a card: ``error`` (a max abs difference unless said) must be ``<= tol``."""

    card: str
    statement: str
    error: float
    tol: float

    @property
    def passed(self) -> bool:
        return math.isfinite(self.error) and self.error <= self.tol


def _maxdiff(a: Tensor, b: Tensor) -> float:
    return float((a.to(torch.float64) - b.to(torch.float64)).abs().max())


def _noise(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _diffusers_loop(scheduler: object, net: Callable[[Tensor, Tensor], Tensor], x: Tensor) -> Tensor:
    """Run a diffusers scheduler as a pipeline does; the network sees ``timesteps / 1000`` (= sigma)."""
    n_train = scheduler.config.num_train_timesteps
    for t in scheduler.timesteps:
        v = net(x, (t / n_train).expand(x.shape[0]).to(x.dtype))
        x = scheduler.step(v, t, x).prev_sample
    return x


def _verify_diffusers_euler() -> list[Measurement]:
    from ..sampling import sample
    from ..schedules import shifted, uniform

    diffusers = require("diffusers")
    Euler = diffusers.FlowMatchEulerDiscreteScheduler
    net, x0 = probe_network(3), _noise((8, 3), 1)
    out = []
    for shift in (1.0, 3.0):
        sched = Euler(shift=shift)
        sched.set_timesteps(12)
        ref = _diffusers_loop(sched, net, x0.clone())
        ours = sample(net, x0.clone(), sched.sigmas.clone(), CONVENTIONAL)
        out.append(Measurement("diffusers-euler", f"shift {shift:g}: 12 diffusers steps == flowlab.sample on its sigmas",
                               _maxdiff(ref, ours), 1e-5))
        grid = uniform(12, CONVENTIONAL)[:-1].tolist()
        custom = Euler(shift=shift)
        custom.set_timesteps(sigmas=grid)
        out.append(Measurement("diffusers-euler", f"shift {shift:g}: flowlab.schedules.shifted == diffusers(sigmas=uniform)",
                               _maxdiff(custom.sigmas, shifted(12, CONVENTIONAL, shift)), 1e-6))
    dyn = Euler(use_dynamic_shifting=True)
    mu = 0.8
    dyn.set_timesteps(12, mu=mu)
    base = torch.linspace(1.0, 1.0 / dyn.config.num_train_timesteps, 12, dtype=torch.float64)
    out.append(Measurement("diffusers-euler", "dynamic shifting with mu == SD3 shift with s = exp(mu)",
                           _maxdiff(dyn.sigmas[:-1], shift_noise_level(base, math.exp(mu))), 1e-6))
    last, single = diffusers_terminal_sigma(3.0)
    out.append(Measurement("diffusers-euler", f"#13243 shift 3: last nonzero sigma {last:.5f} = shift applied twice "
                           f"(once: {single:.5f})", abs(last - shift_noise_level(single, 3.0)), 1e-6))
    sched = Euler(shift=3.0)
    sched.set_timesteps(12)
    x, worst = x0.clone(), 0.0
    for i, t in enumerate(sched.timesteps):
        v = net(x, (t / 1000).expand(x.shape[0]))
        worst = max(worst, _maxdiff(diffusers_pred_x0(sched, v, t, x), CONVENTIONAL.pred_data(x, v, sched.sigmas[i])))
        x = sched.step(v, t, x).prev_sample
    out.append(Measurement("diffusers-euler", "#10606 diffusers_pred_x0 == CONVENTIONAL.pred_data (x - sigma v)",
                           worst, 1e-6))
    return out


def _verify_diffusers_heun() -> list[Measurement]:
    from ..sampling import sample

    diffusers = require("diffusers")
    net, x0 = probe_network(3), _noise((8, 3), 2)
    out = []
    for shift in (1.0, 3.0):
        sched = diffusers.FlowMatchHeunDiscreteScheduler(shift=shift)
        sched.set_timesteps(8)
        ref = _diffusers_loop(sched, net, x0.clone())
        sigmas = torch.unique_consecutive(sched.sigmas)
        ours = sample(net, x0.clone(), sigmas, CONVENTIONAL, method="heun")
        out.append(Measurement("diffusers-heun", f"shift {shift:g}: 8 Heun steps (15 calls) == flowlab.sample(method='heun')",
                               _maxdiff(ref, ours), 1e-5))
    return out


def _verify_flow_matching() -> list[Measurement]:
    from ..sampling import sample
    from ..schedules import uniform

    require("flow_matching")
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler
    from flow_matching.solver import ODESolver

    dt64 = torch.float64
    path = AffineProbPath(scheduler=CondOTScheduler())
    noise, data, v = _noise((16, 3), 3, dt64), _noise((16, 3), 4, dt64), _noise((16, 3), 5, dt64)
    t = torch.rand(16, generator=torch.Generator().manual_seed(6), dtype=dt64) * 0.98 + 0.01
    ps = path.sample(x_0=noise, x_1=data, t=t)
    out = [Measurement("flow-matching", "CondOT path x_t == REVERSED.interpolate",
                       _maxdiff(ps.x_t, REVERSED.interpolate(data, noise, t)), 1e-12),
           Measurement("flow-matching", "CondOT dx_t == REVERSED.velocity_target (D - E)",
                       _maxdiff(ps.dx_t, REVERSED.velocity_target(data, noise, t)), 1e-12)]
    x = ps.x_t
    a, b, da, db = REVERSED.coefficients(F.bcast(t, x))
    d_hat = REVERSED.pred_data(x, v, t)
    e_hat = REVERSED.pred_noise(x, v, t)
    tc = t.reshape(-1, 1)  # its conversions take t shaped to broadcast against x
    pairs = {
        "velocity_to_target": (path.velocity_to_target(v, x, tc), d_hat),
        "velocity_to_epsilon": (path.velocity_to_epsilon(v, x, tc), e_hat),
        "target_to_velocity": (path.target_to_velocity(d_hat, x, tc), REVERSED.velocity_from_data(x, d_hat, t)),
        "epsilon_to_velocity": (path.epsilon_to_velocity(e_hat, x, tc), REVERSED.velocity_from_noise(x, e_hat, t)),
        "target_to_epsilon": (path.target_to_epsilon(d_hat, x, tc), F.data_to_noise(x, d_hat, a, b)),
        "epsilon_to_target": (path.epsilon_to_target(e_hat, x, tc), F.noise_to_data(x, e_hat, a, b)),
    }
    worst = max(_maxdiff(lib, ours) for lib, ours in pairs.values())
    out.append(Measurement("flow-matching", "its six conversions == flowlab's (CondOT, float64)", worst, 1e-12))
    net, x_init = probe_network(3), _noise((8, 3), 7, dt64)
    grid = uniform(10, REVERSED, dtype=dt64)
    ref = ODESolver(velocity_model=net).sample(x_init=x_init, step_size=None, method="euler", time_grid=grid)
    ours = sample(net, x_init.clone(), grid, REVERSED)
    out.append(Measurement("flow-matching", "ODESolver(method='euler') on 10 steps == flowlab.sample(REVERSED)",
                           _maxdiff(ref, ours), 1e-12))
    return out


def _verify_torchcfm() -> list[Measurement]:
    require("torchcfm")
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    dt64 = torch.float64
    x0, x1 = _noise((16, 3), 8, dt64), _noise((16, 3), 9, dt64)
    t = torch.rand(16, generator=torch.Generator().manual_seed(10), dtype=dt64)
    fm = ConditionalFlowMatcher(sigma=0.0)
    t_out, xt, ut = fm.sample_location_and_conditional_flow(x0, x1, t=t)
    out = [Measurement("torchcfm", "sigma = 0: x_t == REVERSED.interpolate(D = x1, E = x0)",
                       _maxdiff(xt, REVERSED.interpolate(x1, x0, t_out)), 1e-12),
           Measurement("torchcfm", "u_t == REVERSED.velocity_target (D - E)",
                       _maxdiff(ut, REVERSED.velocity_target(x1, x0, t_out)), 1e-12)]
    fm = ConditionalFlowMatcher(sigma=0.1)
    t_out, xt, ut, eps = fm.sample_location_and_conditional_flow(x0, x1, t=t, return_noise=True)
    out.append(Measurement("torchcfm", "sigma = 0.1: x_t - sigma eps == REVERSED.interpolate",
                           _maxdiff(xt - 0.1 * eps, REVERSED.interpolate(x1, x0, t_out)), 1e-12))
    return out


def _verify_k_diffusion() -> list[Measurement]:
    from ..sampling import sample
    from ..schedules import shifted

    kd = load_k_diffusion_sampling()
    dt64 = torch.float64
    net, x0 = probe_network(3), _noise((8, 3), 11, dt64)

    def denoiser(x: Tensor, sigma: Tensor) -> Tensor:  # a flow model as a k-diffusion denoiser
        return x - F.bcast(sigma, x) * net(x, sigma)

    sigmas = shifted(10, CONVENTIONAL, 3.0, dtype=dt64)
    out = []
    for name, method in (("sample_euler", "euler"), ("sample_heun", "heun")):
        ref = getattr(kd, name)(denoiser, x0.clone(), sigmas, disable=True)
        ours = sample(net, x0.clone(), sigmas, CONVENTIONAL, method=method)
        out.append(Measurement("k-diffusion", f"{name} with D = x - sigma v == flowlab.sample(method='{method}')",
                               _maxdiff(ref, ours), 1e-12))
    return out


def _verify_ddim() -> list[Measurement]:
    from ..sampling import sample

    diffusers = require("diffusers")
    sched = diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(10)
    eps_net, x_vp = probe_network(3), _noise((8, 3), 12, torch.float64)
    abar_all = sched.alphas_cumprod
    abar = torch.cat([abar_all[sched.timesteps], torch.ones(1)]).to(torch.float64)  # the last step lands on abar = 1
    ts_int = sched.timesteps
    x_ref, x = x_vp.clone(), x_vp.clone()
    for t in ts_int:
        eps = eps_net(x_ref, (t / 1000.0).expand(x_ref.shape[0]))
        x_ref = sched.step(eps, t, x_ref, eta=0.0).prev_sample
    s_grid = ddim_flow_time(abar)

    def flow_model(xf: Tensor, s: Tensor) -> Tensor:
        i = int((s_grid - s[0]).abs().argmin())  # the flow time is one of the grid points
        a = abar[i]
        xv = xf * (a.sqrt() + (1 - a).sqrt())
        return ddim_flow_velocity(xv, eps_net(xv, (ts_int[i] / 1000.0).expand(xf.shape[0])), a)

    # DDPM's first level is not pure noise (abar_999 > 0), so the grid starts just below s = 1
    ours = sample(flow_model, ddim_to_flow(x_vp.clone(), abar[0]), s_grid, CONVENTIONAL, check_schedule=False)
    return [Measurement("ddim", "10 DDIM steps (eta 0) == flowlab Euler on x_f = x / (sqrt(abar) + sqrt(1 - abar))",
                        _maxdiff(x_ref, ours), 1e-5)]


def _verify_hunyuan() -> list[Measurement]:
    from ..schedules import hunyuan_compat
    from ..sampling import sample

    fx = load_scheduler_fixture("hunyuan3d2")
    out = []
    worst_sched, worst_traj, worst_pred = 0.0, 0.0, 0.0
    for case in fx["cases"]:
        n = case["num_inference_steps"]
        ours = hunyuan_compat(n)
        worst_sched = max(worst_sched, _maxdiff(torch.tensor(case["sigmas"]), ours))
        x0 = torch.tensor(case["x_init"])
        vs = [torch.tensor(v) for v in case["model_outputs"]]
        calls = iter(vs)
        traj = sample(lambda x, t: next(calls), x0.clone(), ours, REVERSED)
        worst_traj = max(worst_traj, _maxdiff(torch.tensor(case["final"]), traj))
    probe = fx["scale_noise"]
    mixed = torch.tensor(probe["output"])
    sig = torch.tensor(probe["sigma"])
    conv = CONVENTIONAL.interpolate(torch.tensor(probe["sample"]), torch.tensor(probe["noise"]), sig)
    out.append(Measurement("hunyuan3d2", "hy3dgen sigmas == flowlab.schedules.hunyuan_compat(N)", worst_sched, 0.0))
    out.append(Measurement("hunyuan3d2", "hy3dgen step loop == flowlab.sample(REVERSED) on hunyuan_compat",
                           worst_traj, 1e-6))
    last = fx["cases"][-1]
    out.append(Measurement("hunyuan3d2", f"wasted last step: after {last['num_inference_steps']} calls the state is the "
                           f"state after {last['num_inference_steps'] - 1}",
                           _maxdiff(torch.tensor(last["states"][-1]), torch.tensor(last["states"][-2])), 0.0))
    out.append(Measurement("hunyuan3d2", "hy3dgen scale_noise == CONVENTIONAL.interpolate (trap 3)",
                           _maxdiff(mixed, conv), 1e-6))
    return out


_VERIFIERS: dict[str, Callable[[], list[Measurement]]] = {
    "diffusers-euler": _verify_diffusers_euler,
    "diffusers-heun": _verify_diffusers_heun,
    "flow-matching": _verify_flow_matching,
    "torchcfm": _verify_torchcfm,
    "k-diffusion": _verify_k_diffusion,
    "ddim": _verify_ddim,
    "hunyuan3d2": _verify_hunyuan,
}


def verify(key: str) -> list[Measurement]:
    """Run card ``key``'s check: the system's own code next to flowlab's on the same inputs."""
    card(key)
    with torch.no_grad():
        return _VERIFIERS[key]()


def atlas_table(measurements: list[Measurement]) -> str:
    """One markdown table of all cards, each row with the number of its executed checks that passed.

    Prints tolerances, never the measured floats (those differ in the last bits between machines).
    """
    head = ("| card | convention | time | network output | data prediction | CFG scale | checks |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]
    for c in CARDS:
        rows = [m for m in measurements if m.card == c.key]
        ok = sum(m.passed for m in rows)
        tol = max((m.tol for m in rows), default=float("nan"))
        status = f"{ok}/{len(rows)} pass, max error <= {tol:.0e}" if rows else "not run"
        time_short = c.time.split(";")[0].split(" (")[0]
        cfg = "w = g - 1 (0 = none)" if c.guidance == _CFG_W else "g (1 = none)"
        lines.append(f"| {c.system} | {c.convention} | {time_short} | {c.network_output} | "
                     f"{c.data_prediction.split('; ')[0]} | {cfg} | {status} |")
    return "\n".join(lines)


def paths_table() -> str:
    """One markdown table of every card's path: interpolant, network output, data and noise predictions."""
    lines = ["| card | convention | interpolant | network output | data prediction | noise prediction |",
             "|---|---|---|---|---|---|"]
    for c in CARDS:
        lines.append(f"| {c.system.split(' (')[0]} | {c.convention} | {c.interpolant} | {c.network_output} | "
                     f"{c.data_prediction.split('; ')[0]} | {c.noise_prediction} |")
    return "\n".join(lines)


# ---- fixtures ----------------------------------------------------------------------------------------

FIXTURE_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "schedulers"


def load_scheduler_fixture(name: str) -> dict:
    """Load ``tests/data/schedulers/<name>.json`` (written by tools/make_scheduler_fixtures.py)."""
    import json

    path = FIXTURE_DIR / f"{name}.json"
    if not path.is_file():
        raise FlowlabError(f"scheduler fixture {path} is missing; regenerate it with "
                           "`/work/venvs/hy3dgen/bin/python tools/make_scheduler_fixtures.py --update` "
                           "(needs hy3dgen) or check out tests/data/schedulers/")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)
