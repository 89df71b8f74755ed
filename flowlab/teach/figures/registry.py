"""The registry ``flowlab figures`` writes: each figure name, what it shows, and a builder with small default data."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from matplotlib.figure import Figure
from torch import Tensor

from ...conventions import CONVENTIONAL, REVERSED
from ...errors import FlowlabError
from .paths import segment_jumps, shift_schedules, time_axes
from .predictions import predictions_over_t
from .runs import guidance_trajectories, loss_curve, sw2_table, sw2_vs_calls, trajectories_2d


# ---- the registry: default data for `flowlab figures` --------------------------------------------------

@dataclass(frozen=True)
class FigureSpec:
    """A named figure: what it shows (for index.md) and how to build it with small default data."""

    name: str
    shows: str
    notebook: str
    build: Callable[[], Figure]


def _exact_gmm_trajs(steps: int = 50, n: int = 400) -> tuple[dict, object, Tensor]:
    from ...gmm import eight_gaussians_gmm
    from ...sampling import trajectory
    from ...schedules import uniform

    gmm = eight_gaussians_gmm()
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    trajs = {c.name: trajectory(gmm.velocity_model(c), x0, uniform(steps, c, dtype=torch.float64), c)
             for c in (CONVENTIONAL, REVERSED)}
    return trajs, gmm, x0


def _build_shift() -> Figure:
    try:
        import diffusers
    except ImportError:
        return shift_schedules(10, 3.0, None)
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(10)
    return shift_schedules(10, 3.0, sched.sigmas.clone())


def _build_trajectories() -> Figure:
    from ...sampling import trajectory
    from ...schedules import uniform

    trajs, gmm, x0 = _exact_gmm_trajs()
    wrong = trajectory(gmm.velocity_model(CONVENTIONAL), x0, uniform(50, REVERSED, dtype=torch.float64), REVERSED)
    data = gmm.sample(2000, generator=torch.Generator().manual_seed(10))
    return trajectories_2d({k: v.xs for k, v in trajs.items()}, wrong.xs, data)


def _build_loss() -> Figure:
    from ...models import MLPConfig, train
    from ...toys import sample_toy

    data = sample_toy("two_moons", 4000, generator=torch.Generator().manual_seed(0))
    with _one_thread():
        losses = {c.name: train(data, c, config=MLPConfig(dim=2), steps=300, batch_size=256, seed=0).losses
                  for c in (CONVENTIONAL, REVERSED)}
    return loss_curve(losses, window=20)


def _build_sw2() -> Figure:
    from ...gmm import eight_gaussians_gmm
    from ...metrics import sliced_wasserstein

    gmm = eight_gaussians_gmm()
    ref = gmm.sample(2000, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    ref_b = gmm.sample(2000, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rows = sw2_table(gmm.velocity_model(REVERSED), x0, ref)
    return sw2_vs_calls(rows, sliced_wasserstein(ref, ref_b))


def guidance_runs(n: int = 2000, steps: int = 50, seed: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
    """Reversed eight-Gaussians runs with constraint guidance on the data and on the noise endpoint.

    The same setup as :func:`flowlab.guidance.guidance_demo` (region ``x_1 >= 1``, scale 0.5, seed ``seed``),
    recorded with :func:`flowlab.sampling.trajectory`. Returns ``(ts (steps + 1,), {label: xs})``.
    """
    from ...gmm import eight_gaussians_gmm
    from ...guidance import HalfPlane, constraint_guided
    from ...sampling import trajectory
    from ...schedules import uniform

    gmm = eight_gaussians_gmm()
    region = HalfPlane((1.0, 0.0), 1.0)
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    runs, ts = {}, None
    for endpoint, label in (("data", "right: guide $x + (1 - t)\\,v$ (data)"),
                            ("noise", "wrong: guide $x - t\\,v$ (noise, #124)")):
        model = constraint_guided(gmm.velocity_model(REVERSED), REVERSED, region.penalty, 0.5, endpoint=endpoint)
        tr = trajectory(model, x0, uniform(steps, REVERSED), REVERSED)
        runs[label], ts = tr.xs, tr.ts
    return ts, runs


def _build_guidance() -> Figure:
    ts, runs = guidance_runs()
    return guidance_trajectories(ts, runs)


def _build_predictions() -> Figure:
    trajs, _, _ = _exact_gmm_trajs(n=600)
    return predictions_over_t(trajs)


class _one_thread:
    def __enter__(self) -> None:
        self.n = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.n)


REGISTRY: dict[str, FigureSpec] = {s.name: s for s in (
    FigureSpec("segment_jumps", "the straight path from noise E to data D, the state x on it and both Euler jumps "
               "(to s' = 0 and s' = 1), conventional and reversed side by side, each labelled data or noise",
               "01", segment_jumps),
    FigureSpec("time_axes", "the sigma axis and the t axis aligned (t = 1 - sigma); Hunyuan3D-2's 10-call schedule "
               "with its zero-length last step marked, and the corrected schedule", "01", time_axes),
    FigureSpec("shift_schedules", "diffusers' conventional schedules, 10 steps: shift 1, shift 3 applied once, and "
               "diffusers' own set_timesteps grid at shift 3 (shifted twice, diffusers #13243); linear and log scale",
               "05", _build_shift),
    FigureSpec("trajectories_2d", "exact eight-Gaussians velocity: conventional and reversed trajectories from the "
               "same noise overlaid (they coincide), and the reversed sampler fed the unflipped conventional "
               "velocity (misses the data)", "02", _build_trajectories),
    FigureSpec("loss_curve", "flow-matching training loss per step in both conventions (tiny run: 300 steps, two "
               "moons); it falls and levels off above zero", "02", _build_loss),
    FigureSpec("sw2_vs_calls", "sliced W2 to the data against the number of model calls, Hunyuan3D-2's schedule "
               "(wasted last call) vs the corrected one, exact eight-Gaussians velocity, with the seed noise",
               "02", _build_sw2),
    FigureSpec("guidance_trajectories", "constraint guidance toward x1 >= 1 on the data endpoint (right) and on "
               "the noise endpoint (wrong, #124): x1 over t and the final samples, symlog axes, nothing clipped",
               "06", _build_guidance),
    FigureSpec("predictions_over_t", "small multiples: the state, the data prediction and the noise prediction "
               "at four noise levels, conventional and reversed side by side (the static view of the notebooks' "
               "slider)", "02", _build_predictions),
)}


def build(name: str) -> Figure:
    """Build the registered figure ``name`` with its default data."""
    try:
        spec = REGISTRY[name]
    except KeyError:
        raise FlowlabError(f"unknown figure {name!r}; figures: {', '.join(REGISTRY)}") from None
    return spec.build()
