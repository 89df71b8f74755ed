#!/usr/bin/env python3
"""Write notebooks/05_convention_atlas.ipynb and 06_guidance_with_pred_x1.ipynb (no outputs).

After editing, rebuild and execute them in place::

    python3 tools/make_atlas_notebooks.py
    jupyter nbconvert --to notebook --execute --inplace notebooks/05_convention_atlas.ipynb
    jupyter nbconvert --to notebook --execute --inplace notebooks/06_guidance_with_pred_x1.ipynb

then check each with nbval twice and commit them with outputs. Notebook 05 needs the pinned card
libraries (flowlab.atlas.PINS).
"""
from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip("\n"))


def claims_cell(key: str) -> nbformat.NotebookNode:
    return code(f"""
rows = atlas.verify("{key}")
for m in rows:
    if m.tol == 0:
        claim_exact(f"[{key}] {{m.statement}}", m.error == 0)
    else:
        claim(f"[{key}] {{m.statement}}", m.error, m.tol)
measured += rows
""")


ATLAS = [
    md("""
# 05 · The convention atlas

*Purpose:* one card per real system (diffusers, facebookresearch/flow_matching, torchcfm, k-diffusion,
DDIM, Hunyuan3D-2) stating its direction of time, interpolant, network output, data and noise predictions
and guidance scale, each card backed by running **that system's own code** next to flowlab's on the same
inputs. Then the inspector reads a scheduler it has never seen. Symbols: [notation](NOTATION.md).

Every check is a `claim(...)` line (PASS and the tolerance, never the raw float). The libraries are the
pinned test dependencies (`flowlab.atlas.PINS`); Hunyuan3D-2 enters through fixtures written with hy3dgen
2.0.2 by `tools/make_scheduler_fixtures.py`.
"""),
    code("""
import importlib.metadata
import math
import warnings

import torch

from flowlab import atlas
from flowlab.claims import claim, claim_exact
from flowlab.inspector import inspect, inspect_step, schedule_step
from flowlab.schedules import hunyuan_compat

warnings.filterwarnings("ignore")  # third-party deprecation chatter is not part of the stored outputs
_ = torch.manual_seed(0)
measured = []
for dist, pin in atlas.PINS.items():
    claim_exact(f"{dist} {pin} installed", importlib.metadata.version(dist) == pin)
"""),
    md("""
## 1. diffusers `FlowMatchEulerDiscreteScheduler`

Conventional: $\\sigma$ runs 1 → 0, $x = (1-\\sigma) D + \\sigma E$, the network outputs $v = E - D$, and
the step is $x' = x + (\\sigma' - \\sigma) v$. The data prediction is the jump to $\\sigma = 0$,
$\\hat D = x - \\sigma v$; `step()` does not return it (diffusers #10606), `atlas.diffusers_pred_x0`
does. The shift is $\\sigma \\mapsto s\\sigma / (1 + (s-1)\\sigma)$; dynamic shifting with $\\mu$ is the
same map with $s = e^{\\mu}$.
"""),
    claims_cell("diffusers-euler"),
    code("""
last, once = atlas.diffusers_terminal_sigma(3.0)
print(f"shift 3, 10 steps: last nonzero sigma {last:.5f}; one shift of 1/1000 gives {once:.5f}")
"""),
    md("""
*Pitfall guarded against:* diffusers #13243 (open). `set_timesteps` builds its grid from the already
shifted training sigmas and shifts it again, so at shift 3 the last step jumps from 0.00893 straight to
0, three times the intended 0.00299. `flowlab.schedules.shifted` applies the shift once.
"""),
    md("""
## 2. diffusers `FlowMatchHeunDiscreteScheduler`

Same convention; each step calls the model at $\\sigma$ and at the Euler-predicted point at $\\sigma'$, and
averages. The scheduler lists every interior sigma twice: $2N - 1$ calls for $N$ steps, because the last
step into $\\sigma = 0$ is plain Euler, as in flowlab's `method="heun"` and k-diffusion's `sample_heun`.
"""),
    claims_cell("diffusers-heun"),
    md("""
*Pitfall guarded against:* counting Heun's cost as $2N$ calls, or evaluating the model at $\\sigma = 0$.
"""),
    md("""
## 3. facebookresearch/flow_matching

Reversed: $t$ runs 0 → 1, $X_0$ is the noise and $X_1$ the data, $x_t = \\alpha_t X_1 + \\sigma_t X_0$
(CondOT: $t X_1 + (1-t) X_0$), target $\\dot\\alpha_t X_1 + \\dot\\sigma_t X_0$. Its six conversions
(`velocity_to_target`, ...) are flowlab's `pred_data`, `pred_noise`, `velocity_from_data`, ... and its
`ODESolver(method="euler")` is flowlab's sampler. Its CFG weight $w$ is flowlab's scale $g = 1 + w$.
"""),
    claims_cell("flow-matching"),
    md("""
*Pitfall guarded against:* reading its `sigma_t` as a time (it is the noise coefficient of the path) or
its `x_0` as the data (it is the noise).
"""),
    md("""
## 4. torchcfm

Reversed as well: `ConditionalFlowMatcher` draws $x_t = t x_1 + (1-t) x_0 + \\sigma\\epsilon$ with
$x_0$ the source noise, and regresses $u_t = x_1 - x_0$. It provides no data prediction; flowlab's is
$x + (1 - t) v$.
"""),
    claims_cell("torchcfm"),
    md("""
*Pitfall guarded against:* torchcfm's `sigma` is a constant width of extra noise, not a time.
"""),
    md("""
## 5. k-diffusion

Karras samplers integrate $dx/d\\sigma = (x - D(x;\\sigma))/\\sigma$ for a denoiser $D$. A conventional
flow model becomes a denoiser through $D = x - \\sigma v$; then $(x - D)/\\sigma = v$ and `sample_euler`
/ `sample_heun` are flowlab's Euler / Heun. Only `k_diffusion/sampling.py` is loaded (its package
`__init__` needs torchvision): `atlas.load_k_diffusion_sampling()`.
"""),
    claims_cell("k-diffusion"),
    md("""
*Pitfall guarded against:* feeding a flow model's velocity to a sampler that expects a denoiser.
"""),
    md("""
## 6. DDIM is Euler on a reparametrised straight flow

With $x = \\sqrt{\\bar\\alpha} D + \\sqrt{1-\\bar\\alpha} E$ and an $\\epsilon$ network, put
$x_f = x / (\\sqrt{\\bar\\alpha} + \\sqrt{1-\\bar\\alpha})$ and
$s = \\sqrt{1-\\bar\\alpha} / (\\sqrt{\\bar\\alpha} + \\sqrt{1-\\bar\\alpha})$: then $x_f = (1-s) D + s E$ and
$v = \\epsilon - \\hat D$. A deterministic DDIM step is exactly an Euler step of $x_f$ in $s$.
"""),
    claims_cell("ddim"),
    md("""
*Pitfall guarded against:* `DDIMScheduler` defaults to `clip_sample=True`, which clips $\\hat D$ to
$[-1, 1]$ and breaks the equivalence (the inspector below reports such a step as not affine);
`set_alpha_to_one=False` stops short of the data.
"""),
    md("""
## 7. Hunyuan3D-2 (hy3dgen 2.0.2, through fixtures)

Reversed: $t$ runs 0 → 1, $x = t D + (1-t) E$, $v = D - E$, data $x + (1 - t) v$. The pipeline passes
`sigmas = linspace(0, 1, N)` and the scheduler appends 1.0: $N$ model calls, the last from $t = 1$ to
$t = 1$. Its `scale_noise`, kept from diffusers, mixes in the conventional direction.
"""),
    claims_cell("hunyuan3d2"),
    md("""
*Pitfall guarded against:* Hunyuan3D-2 #124 takes $x - t v$ (the noise) for the data prediction, and the
wasted last call costs $1/N$ of the sampling time for nothing.
"""),
    md("""
## The atlas

One row per card; the last column counts the checks executed above.
"""),
    code("""
from IPython.display import Markdown, display

display(Markdown(atlas.atlas_table(measured)))
claim_exact("every card's checks pass", all(m.passed for m in measured) and len(measured) >= 20)
"""),
    md("""
## 8. The inspector reads a scheduler it has never seen

`flowlab inspect` probes each step with basis inputs ($x' = a x + b\\,\\mathrm{out} + c$), checks the fit on
random inputs, and derives the rest. Here it reads diffusers at shift 3 (the command line is
`flowlab inspect diffusers.FlowMatchEulerDiscreteScheduler --shift 3`).
"""),
    code("""
import diffusers

card = inspect(diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0), 10)
print(card.card())
claim_exact("inspector: conventional, E - D, data x - sigma*v",
            (card.convention, card.model_output, card.data_prediction) == ("conventional", "E - D", "x - sigma*v"))
claim("inspector: recovered shift is 3", abs(card.shift - 3.0), 1e-3)
claim_exact("inspector: names the double-shifted terminal sigma (#13243)", any("#13243" in f for f in card.findings))
"""),
    md("""
The same on Hunyuan3D-2's schedule (`flowlab inspect hunyuan3d2`; without hy3dgen installed it probes
`flowlab.schedules.hunyuan_compat`, which the tests show gives the same card as hy3dgen's own class):
"""),
    code("""
step, timesteps = schedule_step(hunyuan_compat(10))
card = inspect_step(step, timesteps, source="Hunyuan3D-2, 10 calls")
print(card.card())
claim_exact("inspector: reversed, D - E, data x + (1 - t)*v",
            (card.convention, card.model_output, card.data_prediction) == ("reversed", "D - E", "x + (1 - t)*v"))
claim_exact("inspector: the last of 10 calls is a no-op", card.noop_steps == (9,) and card.effective_steps == 9)
"""),
    code("""
heun = inspect(diffusers.FlowMatchHeunDiscreteScheduler(), 5)
clipped = inspect(diffusers.DDIMScheduler(), 5)
claim_exact("inspector refuses Heun (depends on earlier calls)", not heun.affine)
claim_exact("inspector refuses DDIM with clip_sample=True (not affine)", not clipped.affine)
"""),
    md("""
*Pitfall guarded against:* guessing a convention from names (`sigma_min`, `pred_x0`) instead of from what
the step does; the inspector says "not affine" rather than guess.
"""),
]

GUIDE = [
    md("""
# 06 · Guidance with pred_x1

*Purpose:* Hunyuan3D-2 issue #124 asked for the data prediction in the reversed convention in order to
guide sampling. Guidance that acts on the predicted data works only with the right endpoint: here a
constraint on the prediction steers 2-D samples into a region, with $x + (1 - t) v$ (right) and with
$x - t v$ (the thread's choice), measured. Then: CFG on $v$ equals CFG on the data prediction.
Symbols: [notation](NOTATION.md).

Every check is a `claim(...)` line; numbers are printed rounded.
"""),
    code("""
import matplotlib.pyplot as plt
import torch

from flowlab import CONVENTIONAL, REVERSED
from flowlab import functional as F
from flowlab import symbolic as Y
from flowlab.claims import claim, claim_exact
from flowlab.gmm import eight_gaussians_gmm
from flowlab.guidance import HalfPlane, cfg_data_gap, constraint_guided, guidance_demo
from flowlab.sampling import sample
from flowlab.schedules import hunyuan_compat

_ = torch.manual_seed(0)
"""),
    md("""
## 1. Which jump is the data

Reversed convention: $t$ runs 0 → 1, $x = t D + (1 - t) E$, $v = D - E$. The Euler jump to $t = 1$,
$x + (1 - t) v$, is the data; the jump to $t = 0$, $x - t v$ ("pred_x0" in Hunyuan's naming), is the noise.
"""),
    code("""
g = torch.Generator().manual_seed(0)
D, E = torch.randn(256, 2, generator=g), torch.randn(256, 2, generator=g)
t = torch.rand(256, generator=g)
x, v = REVERSED.interpolate(D, E, t), REVERSED.velocity_target(D, E, t)
claim("x + (1 - t) v is the data D", (F.reversed_pred_x1(x, v, t) - D).abs().max(), 1e-5)
claim("x - t v is the noise E", (F.reversed_pred_x0(x, v, t) - E).abs().max(), 1e-5)
"""),
    md("""
*Pitfall guarded against:* #124's derivation, which calls $x - t v$ the data prediction.
"""),
    md("""
## 2. Guidance on the predicted data

Target: the eight-Gaussians mixture (exact velocity) restricted to the half-plane $x_1 \\ge 1$ (three of the
eight modes). At every step the guidance jumps to an endpoint $s$, projects the prediction onto the region
($\\hat D' = \\hat D - 0.5 \\nabla \\mathrm{relu}(1 - \\hat D_1)^2$), and returns the velocity whose jump
gives the corrected prediction, $v' = v + (\\hat D' - \\hat D) / (s - t)$. With $s = 1$ (data) that is
correct; with $s = 0$ the constraint is judged on the noise and $s - t < 0$ flips the correction.
50 Euler steps, 2000 samples; distance = sliced Wasserstein-2 to 2000 exact target samples.
"""),
    code("""
plain = guidance_demo("reversed", None)
right = guidance_demo("reversed", "data")
wrong = guidance_demo("reversed", "noise")
for r in (plain, right, wrong):
    print(f"{r.label:45s} inside {r.fraction_inside:6.1%}   distance {r.distance:8.2f}")
"""),
    code("""
claim("right endpoint: every sample meets the constraint", 1 - right.fraction_inside, 0.01)
claim_exact("right endpoint: distance below half of unguided", right.distance < 0.5 * plain.distance)
claim_exact("wrong endpoint: fewer samples inside than without guidance", wrong.fraction_inside < plain.fraction_inside)
claim_exact("wrong endpoint: farther from the target than without guidance", wrong.distance > plain.distance)
"""),
    code("""
fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
for ax, r in zip(axes, (plain, right, wrong)):
    pts = r.samples.clamp(-4, 4)
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_title(r.label.split(", ")[1], fontsize=10)
    ax.set_xlim(-4, 4); ax.set_ylim(-4, 4); ax.set_aspect("equal")
fig.suptitle("eight Gaussians, region x1 >= 1 (right of the line); wrong-endpoint points clipped to the frame")
plt.show()
"""),
    md("""
With the right endpoint every sample ends in the region, but this projection is crude: samples headed for
the modes at $(0, \pm 2)$ end on the boundary line, which is why the distance to the target is not 0.
With the wrong endpoint the samples are thrown away from the region (some far outside the frame).

*Pitfall guarded against:* guidance (reconstruction, rewards, constraints) built on $x - t v$: it steers the
noise estimate, and pushes the sample away from the region.
"""),
    md("""
## 3. The same in the conventional convention

$\\sigma$ runs 1 → 0, data $x - \\sigma v$, noise $x + (1 - \\sigma) v$. The guidance code is the same; only
the endpoint times change. With the same initial noise the samples agree with the reversed run.
"""),
    code("""
right_c = guidance_demo("conventional", "data")
wrong_c = guidance_demo("conventional", "noise")
claim("conventional == reversed, right endpoint (samples)", (right_c.samples - right.samples).abs().max(), 1e-3)
claim_exact("conventional, wrong endpoint: same fraction inside as reversed",
            wrong_c.fraction_inside == wrong.fraction_inside)
"""),
    md("""
*Pitfall guarded against:* porting guidance between conventions by copying `x - t v`: the formula that is
the data in one convention is the noise in the other.
"""),
    md("""
## 4. With Hunyuan3D-2's schedule

The last call of `hunyuan_compat(N)` is at $t = 1 = t_{data}$, where $s - t = 0$: no correction is
possible, and the guidance leaves $v$ alone instead of dividing by zero.
"""),
    code("""
gmm = eight_gaussians_gmm()
region = HalfPlane((1.0, 0.0), 1.0)
guided = constraint_guided(gmm.velocity_model(REVERSED), REVERSED, region.penalty, 0.5)
x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
out = sample(guided, x0, hunyuan_compat(50), REVERSED)
claim_exact("hunyuan_compat(50) with guidance: finite samples", bool(torch.isfinite(out).all()))
claim("hunyuan_compat(50) with guidance: samples meet the constraint", 1 - float(region.inside(out, 0.05).float().mean()), 0.01)
"""),
    md("""
## 5. CFG on $v$ equals CFG on the data prediction

$\\mathrm{cfg}(v_c, v_u, g) = v_u + g (v_c - v_u)$ (diffusers, Hunyuan3D-2; $g = 1$ is no guidance;
flow_matching writes $(1 + w) v_c - w v_u$, $g = 1 + w$). The data prediction is affine in $v$ with
weights that sum to one, so it commutes with CFG. Condition: the three right-hand modes; unconditional:
all eight.
"""),
    code("""
claim_exact("SymPy: pred_data(cfg(v)) - cfg(pred_data) = 0", Y.vanishes(Y.cfg_data_remainder()))
claim_exact("SymPy: (1 + w) cond - w uncond = cfg with g = 1 + w", Y.vanishes(Y.cfg_scale_remainder()))
for conv in ("reversed", "conventional"):
    claim(f"{conv}: CFG on v == CFG on pred_data (g = 4.5)", cfg_data_gap(conv, 4.5), 1e-12)
"""),
    md("""
*Pitfall guarded against:* applying CFG to a prediction computed with the wrong endpoint; and mixing up
$g$ and $w$ (a $w$ of 4 is a $g$ of 5).
"""),
]


def write(name: str, cells: list[nbformat.NotebookNode]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = cells
    nbformat.write(nb, ROOT / "notebooks" / name)


if __name__ == "__main__":
    write("05_convention_atlas.ipynb", ATLAS)
    write("06_guidance_with_pred_x1.ipynb", GUIDE)
