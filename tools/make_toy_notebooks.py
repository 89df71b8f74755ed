#!/usr/bin/env python3
"""Write notebooks/02_toy_2d_both_conventions.ipynb and 03_toy_3d_both_conventions.ipynb (no outputs).

The two notebooks run the same experiments, in 2-D and in 3-D; this script keeps their cells in
one place. After editing, rebuild and execute them in place::

    python3 tools/make_toy_notebooks.py
    jupyter nbconvert --to notebook --execute --inplace notebooks/02_toy_2d_both_conventions.ipynb
    jupyter nbconvert --to notebook --execute --inplace notebooks/03_toy_3d_both_conventions.ipynb

then check them with nbval twice (see tests' README / the team rules) and commit them with outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

SPECS = {
    2: dict(
        file="02_toy_2d_both_conventions.ipynb", number="02", dims="2-D", gmm="eight_gaussians",
        gmm_text="eight Gaussians (std 0.15) on a circle of radius 2", toy="two_moons", toy_text="two moons"),
    3: dict(
        file="03_toy_3d_both_conventions.ipynb", number="03", dims="3-D", gmm="cube_corners",
        gmm_text="eight Gaussians (std 0.15) at the corners of the cube [-1, 1]^3", toy="trefoil_knot",
        toy_text="a trefoil knot"),
}


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip("\n"))


def cells(dim: int, s: dict) -> list[nbformat.NotebookNode]:
    other = "03 does the same in 3-D" if dim == 2 else "02 does the same in 2-D"
    proj = "{}" if dim == 2 else '{"projection": "3d"}'
    view = "ax.set_aspect('equal')" if dim == 2 else "ax.view_init(elev=35, azim=30)"
    out = [
        md(f"""
# {s['number']} · Toy {s['dims']} flows in both conventions

*Purpose:* sample {s['dims']} toy distributions in the conventional convention ($\\sigma$: 1 → 0) and the
reversed one ($t$: 0 → 1, Hunyuan3D-2), with an exact velocity and with small trained networks, and measure
that the two agree, what Hunyuan3D-2 issue #124's `x - t v` really is, and what the wasted last step of its
schedule costs. Symbols: [notation](NOTATION.md). (Notebook {other}.)

Every check is a `claim(...)` line: it prints PASS and the tolerance, never the raw float, so the stored
outputs are the same on every machine. Everything runs on one CPU core in under a minute.
"""),
        code(f"""
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from flowlab import CONVENTIONAL, REVERSED, FlowlabError
from flowlab.claims import claim, claim_exact
from flowlab.gmm import PRESETS
from flowlab.metrics import sliced_wasserstein
from flowlab.models import MLPConfig, load_model, save_model, train
from flowlab.sampling import CallCounter, flip, sample, trajectory
from flowlab.schedules import hunyuan_compat, hunyuan_corrected, n_effective_steps, uniform
from flowlab.toys import sample_toy

torch.set_num_threads(1)  # one thread: bit-for-bit reproducible training on a CPU
torch.manual_seed(0)
N, STEPS = 4000, 50       # points per sample set, Euler steps
# claim() returns the measured error: never echo a cell's last value, so no raw float reaches the outputs
%config InteractiveShell.ast_node_interactivity = "none"
"""),
        md(f"""
## 1. An exact velocity, sampled in both conventions

For a Gaussian-mixture target ({s['gmm_text']}) the marginal velocity of the straight path has a closed
form (`flowlab.gmm`), so there is a perfect model that needs no training:

$$v_{{\\text{{conv}}}}(x, \\sigma) = \\mathbb{{E}}[E - D \\mid x_\\sigma = x], \\qquad
v_{{\\text{{rev}}}}(x, t) = \\mathbb{{E}}[D - E \\mid x_t = x] = -\\,v_{{\\text{{conv}}}}(x, 1 - t).$$

Both are computed by `GaussianMixture.velocity`, once per convention (neither is derived from the other
here). Euler with 50 uniform steps from the same noise visits $\\sigma_k = 1 - k/50$ in one convention and
$t_k = k/50 = 1 - \\sigma_k$ in the other: the same states, so the trajectories must agree up to
round-off, and so must the data predictions ($x - \\sigma v$ conventional, $x + (1 - t) v$ reversed).
"""),
        code(f"""
gmm = PRESETS["{s['gmm']}"]()
for dtype, tol in ((torch.float32, 5e-4), (torch.float64, 1e-10)):
    x0 = torch.randn(N, {dim}, generator=torch.Generator().manual_seed(1), dtype=dtype)
    conv = trajectory(gmm.velocity_model(CONVENTIONAL), x0, uniform(STEPS, CONVENTIONAL, dtype=dtype), CONVENTIONAL)
    rev = trajectory(gmm.velocity_model(REVERSED), x0, uniform(STEPS, REVERSED, dtype=dtype), REVERSED)
    name = str(dtype).replace("torch.", "")
    claim(f"exact GMM, {{name}}: conventional and reversed trajectories agree (max abs, all {{STEPS + 1}} states)",
          (conv.xs - rev.xs).abs().max(), tol)
    claim(f"exact GMM, {{name}}: conventional x - sigma v = reversed x + (1 - t) v at every step",
          (conv.pred_data - rev.pred_data).abs().max(), tol)
"""),
        md("""
float32 differs by round-off accumulated over 50 steps (around 1e-5 on numbers of size ~2, more where
the flow splits between modes), float64 by 1e-12 or less: the two conventions are one computation
written two ways.

*Pitfall guarded against:* driving a model in the other convention's time without converting it. Feed the
conventional velocity to the reversed sampler as it is (no `flip`) and the samples miss the data entirely:
"""),
        code(f"""
ref = gmm.sample(N, generator=torch.Generator().manual_seed(10))
ref_b = gmm.sample(N, generator=torch.Generator().manual_seed(11))
x0 = torch.randn(N, {dim}, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
right = sample(gmm.velocity_model(REVERSED), x0, uniform(STEPS, REVERSED, dtype=torch.float64), REVERSED)
unflipped = sample(gmm.velocity_model(CONVENTIONAL), x0, uniform(STEPS, REVERSED, dtype=torch.float64), REVERSED)
seed_noise = sliced_wasserstein(ref, ref_b)
print(f"sliced W2 to the data: exact model {{sliced_wasserstein(right, ref):.2f}}, "
      f"unflipped {{sliced_wasserstein(unflipped, ref):.2f}}, two data sets {{seed_noise:.2f}}")
claim("exact GMM, reversed sampler: SW2 to the data within 2x the distance between two data sets (ratio)",
      sliced_wasserstein(right, ref) / seed_noise, 2)
claim_exact("conventional velocity in the reversed sampler without flip(): SW2 > 10x the seed noise",
            sliced_wasserstein(unflipped, ref) > 10 * seed_noise)
"""),
        md(f"""
## 2. Training in either convention

A small MLP (`flowlab.models.VelocityMLP`, sinusoidal embedding of the time in the convention's own
units) is trained by flow matching on {s['toy_text']}. The regression target is read from the convention
object (`convention.velocity_target`), never written by hand:

| | input $x$ | target |
|---|---|---|
| conventional, $\\sigma \\sim U(0, 1)$ | $(1 - \\sigma) D + \\sigma E$ | $E - D$ |
| reversed, $t \\sim U(0, 1)$ | $t D + (1 - t) E$ | $D - E$ |

$$\\mathcal{{L}} = \\mathbb{{E}}_{{D, E, t}} \\,\\lVert v_\\theta(x_t, t) - \\text{{target}} \\rVert^2 .$$

Same data, same seed, 2000 Adam steps each; the models know the convention they were trained in.
"""),
        code(f"""
data = sample_toy("{s['toy']}", 20000, generator=torch.Generator().manual_seed(0))
models = {{}}
for convention in (CONVENTIONAL, REVERSED):
    start = time.perf_counter()
    result = train(data, convention, config=MLPConfig(dim={dim}), seed=0)
    models[convention.name] = result.model
    print(f"{{convention.name:>12}}: {{len(result.losses)}} steps in {{time.perf_counter() - start:.1f}} s (wall)")
    claim(f"{{convention.name}}: the loss falls (mean of the last 500 steps / first 100)",
          result.losses[-500:].mean() / result.losses[:100].mean(), 0.9)
"""),
        md("""
The loss does not go to zero: for a given $x_t$ many pairs $(D, E)$ are possible, and the network learns
their average, the marginal velocity.

### One model, both samplers: `flip`

`flip(model)` is the model of the other convention: $v'(x, t') = -v(x, 1 - t')$. The reversed-trained
model, flipped and run by the conventional sampler, retraces the reversed sampler's points:
"""),
        code(f"""
x0 = torch.randn(N, {dim}, generator=torch.Generator().manual_seed(2))
native = sample(models["reversed"], x0, uniform(STEPS, REVERSED), REVERSED)
flipped = sample(flip(models["reversed"]), x0, uniform(STEPS, CONVENTIONAL), CONVENTIONAL)
claim("reversed-trained model: flip() in the conventional sampler = reversed sampler (max abs, float32)",
      (native - flipped).abs().max(), 5e-4)
"""),
        md("""
### Both conventions train equally well

The yardstick is the *seed noise*: the sliced Wasserstein-2 distance between two independent sets of
data points of the same size. A model whose samples are that close to the data cannot be told apart from
the data with this many points; two models whose distances differ by less than it are equally good.
"""),
        code(f"""
ref, ref_b = (sample_toy("{s['toy']}", N, generator=torch.Generator().manual_seed(k)) for k in (10, 11))
seed_noise = sliced_wasserstein(ref, ref_b)
samples = {{name: sample(m, x0, uniform(STEPS, m.convention), m.convention) for name, m in models.items()}}
quality = {{name: sliced_wasserstein(x, ref) for name, x in samples.items()}}
for name, q in quality.items():
    claim(f"{{name}}-trained model: SW2 to the data within 3x the seed noise (ratio)", q / seed_noise, 3)
claim("conventional vs reversed training: SW2 differs by less than the seed noise (ratio)",
      abs(quality["conventional"] - quality["reversed"]) / seed_noise, 1)
"""),
        code(f"""
fig = plt.figure(figsize=(12, 4))
for k, (title, pts) in enumerate([("data", ref), ("trained conventional", samples["conventional"]),
                                  ("trained reversed", samples["reversed"])]):
    ax = fig.add_subplot(1, 3, k + 1{", projection='3d'" if dim == 3 else ""})
    ax.scatter(*pts[:2000].T, s=1{", alpha=0.5" if dim == 3 else ""})
    ax.set_title(title)
    {"ax.set_aspect('equal')" if dim == 2 else "ax.view_init(elev=35, azim=30)"}
plt.show()
"""),
        md("""
Files keep the convention: `save_model` writes safetensors with the convention and the architecture in
the metadata, and `load_model(..., convention=...)` refuses a file trained in the other one (wrap it with
`flip` instead of reinterpreting its time).
"""),
        code("""
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "reversed.safetensors"
    save_model(models["reversed"], path)
    loaded = load_model(path, convention=REVERSED)
    claim_exact("save / load round trip: bit-for-bit the same samples",
                torch.equal(sample(loaded, x0, uniform(STEPS, REVERSED), REVERSED), native))
    try:
        load_model(path, convention=CONVENTIONAL)
        refused = False
    except FlowlabError:
        refused = True
    claim_exact("a reversed-trained file loaded as conventional is refused", refused)
"""),
        md("""
## 3. Issue #124: `x - t v` is the noise, not the data

Hunyuan3D-2 samples in the reversed convention but its thread concluded `pred_x0 = x - t v` for the data
prediction. At time $t$ with velocity $v$ (reversed):

$$\\hat D = x + (1 - t)\\,v \\quad(\\texttt{pred\\_x1}, \\text{ the data}), \\qquad
\\hat E = x - t\\,v \\quad(\\texttt{pred\\_x0}, \\text{ the noise}).$$

Record both along the reversed model's trajectory (the sampler's callback computes them with the derived
formulas) and measure how far each is from the data distribution, and how far `x - t v` is from
$N(0, I)$:
"""),
        code(f"""
traj = trajectory(models["reversed"], x0, uniform(STEPS, REVERSED), REVERSED)
gauss, gauss_b = (torch.randn(N, {dim}, generator=torch.Generator().manual_seed(k)) for k in (12, 13))
gauss_noise = sliced_wasserstein(gauss, gauss_b)  # seed noise of N(0, I) itself
claim("t = 0.10: x - t v is Gaussian noise (SW2 to N(0, I) / its seed noise)",
      sliced_wasserstein(traj.pred_noise[5], gauss) / gauss_noise, 2)
for i in (40, 45, 49):
    right = sliced_wasserstein(traj.pred_data[i], ref)
    wrong = sliced_wasserstein(traj.pred_noise[i], ref)
    claim(f"t = {{i / STEPS:.2f}}: x + (1 - t) v is > 3x closer to the data than x - t v (SW2 ratio)", right / wrong, 0.3)
claim("last step: x + (1 - t) v is as close to the data as the samples are (SW2 / seed noise)",
      sliced_wasserstein(traj.pred_data[-1], ref) / seed_noise, 3)
"""),
        md("""
Early on (small $t$) the state is mostly noise and $x - t v$ is a Gaussian sample; later it is the
network's estimate of the noise the sample came from (shrunk toward 0, an average over the noises
compatible with $x$), and it never approaches the data, while $x + (1 - t) v$ converges to it. *Pitfall guarded against:* guiding with a noise estimate in
place of the data estimate; the plots in section 5 show both side by side.

## 4. The wasted last step of Hunyuan3D-2's schedule

The pipeline passes `sigmas = linspace(0, 1, N)` and the scheduler appends `1.0`, so the last step goes
$1 \\to 1$ ($dt = 0$): $N$ model calls, $N - 1$ effective steps of size $1/(N - 1)$. The corrected schedule
`linspace(0, 1, N + 1)` spends the same $N$ calls on $N$ steps. With the exact velocity (float64, so the
table is free of training noise and round-off):
"""),
        code(f"""
gmm_ref = gmm.sample(N, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
gmm_seed_noise = sliced_wasserstein(gmm_ref, gmm.sample(N, generator=torch.Generator().manual_seed(11), dtype=torch.float64))
x0 = torch.randn(N, {dim}, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
print(f"seed noise {{gmm_seed_noise:.2f}}")
print(" N calls | effective steps compat / corrected | SW2 compat / corrected")
cost = {{}}
for n_calls in (2, 4, 8, 16):
    row = {{}}
    for name, schedule in (("compat", hunyuan_compat(n_calls, dtype=torch.float64)),
                           ("corrected", hunyuan_corrected(n_calls, dtype=torch.float64))):
        model = CallCounter(gmm.velocity_model(REVERSED))
        out = sample(model, x0, schedule, REVERSED)
        row[name] = (model.calls, n_effective_steps(schedule), out, sliced_wasserstein(out, gmm_ref))
    (calls_a, eff_a, out_a, sw_a), (calls_b, eff_b, _, sw_b) = row["compat"], row["corrected"]
    print(f"{{n_calls:8d}} | {{eff_a:15d}} / {{eff_b:<17d}} | {{sw_a:10.2f}} / {{sw_b:.2f}}")
    claim_exact(f"N = {{n_calls}}: both schedules cost N model calls; compat makes N - 1 effective steps, "
                f"corrected N", calls_a == calls_b == n_calls and eff_a == n_calls - 1 and eff_b == n_calls)
    if n_calls > 2:  # compat(N) = corrected(N - 1) plus a step that moves nothing
        same = sample(gmm.velocity_model(REVERSED), x0, hunyuan_corrected(n_calls - 1, dtype=torch.float64), REVERSED)
        claim(f"N = {{n_calls}}: compat samples = corrected(N - 1) samples (max abs)", (out_a - same).abs().max(), 1e-12)
    cost[n_calls] = (sw_a - sw_b) / gmm_seed_noise
claim_exact("N = 4: the wasted call costs more than half the seed noise in SW2", cost[4] > 0.5)
claim("N = 16: the cost is lost in the seed noise (SW2 difference / seed noise)", abs(cost[16]), 0.2)
"""),
        md("""
The same with the trained reversed model (float32, 4 calls; at 8 calls and more the difference is
within the seed noise of this data set):
"""),
        code(f"""
x0 = torch.randn(N, {dim}, generator=torch.Generator().manual_seed(2))
compat = sliced_wasserstein(sample(models["reversed"], x0, hunyuan_compat(4), REVERSED), ref)
corrected = sliced_wasserstein(sample(models["reversed"], x0, hunyuan_corrected(4), REVERSED), ref)
claim_exact("trained model, N = 4: the corrected schedule is closer to the data by more than the seed noise",
            compat - corrected > seed_noise)
"""),
        md("""
*Pitfall guarded against:* counting model calls as steps. At small $N$ the appended `1.0` throws away a
quarter (N = 4) of the budget; at $N = 16$ and above the loss disappears in the sampling noise, which is
why it went unnoticed. (Padding with `0.0` instead of `1.0` is worse: the last step jumps by $-1$.)

## 5. Trajectories and evolving predictions, side by side

The two separately trained models from the same noise. Left: trajectories (grey) ending at the samples
(black). Right: at four moments of sampling (the same noise level $u$: $\\sigma = u$ conventional,
$t = 1 - u$ reversed) the state $x$ (grey), the data prediction (blue) and the noise prediction (orange),
each computed by its convention's formula.
"""),
        code(f"""
x0 = torch.randn(300, {dim}, generator=torch.Generator().manual_seed(3))
trajs = {{name: trajectory(m, x0, uniform(STEPS, m.convention), m.convention) for name, m in models.items()}}
proj = {proj}
fig = plt.figure(figsize=(16, 7))
for row, (name, tr) in enumerate(trajs.items()):
    sym = models[name].convention.symbol
    ax = fig.add_subplot(2, 5, 5 * row + 1, **proj)
    for p in tr.xs.transpose(0, 1)[:100]:
        ax.plot(*p.T, color="grey", lw=0.4, alpha=0.5)
    ax.scatter(*tr.xs[-1].T, s=2, color="black")
    ax.set_title(f"{{name}}: {{sym}} {{tr.ts[0]:.0f}} -> {{tr.ts[-1]:.0f}}")
    {view}
    for col, i in enumerate((10, 20, 30, 40)):
        ax = fig.add_subplot(2, 5, 5 * row + col + 2, **proj)
        for pts, color, label in ((tr.xs[i], "grey", "x"), (tr.pred_data[i], "tab:blue", "data pred."),
                                  (tr.pred_noise[i], "tab:orange", "noise pred.")):
            ax.scatter(*pts.T, s=2, color=color, label=label)
        ax.set_title(f"{{name}}, {{sym}} = {{tr.ts[i]:.1f}}")
        {view}
        if row == 0 and col == 0:
            ax.legend(loc="lower left", fontsize=7, markerscale=3)
plt.tight_layout()
plt.show()
"""),
        md("""
Read the two rows column by column: the same noise level, the same points. In the conventional row the
data prediction is `pred_x0` ($x - \\sigma v$); in the reversed row it is `pred_x1` ($x + (1 - t) v$), and
Hunyuan's `pred_x0` ($x - t v$) is the orange cloud: it starts as the Gaussian and collapses toward its
mean, while the blue cloud sharpens into the data.
"""),
    ]
    return out


def build(dim: int) -> Path:
    s = SPECS[dim]
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = cells(dim, s)
    path = ROOT / "notebooks" / s["file"]
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    for d in SPECS:
        print(build(d))
