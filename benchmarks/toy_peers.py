#!/usr/bin/env python3
"""Toy sampling, flowlab's fast paths against the reference sampler and the peers, same inputs, same run.

Workloads (issue 6, workload 1 and item 3), each an Euler trajectory of N particles over S steps from
float32 noise ``x ~ N(0, I)``:

* ``gmm``: the exact velocity of a Gaussian mixture (eight_gaussians 2-D, cube_corners 3-D).
* ``mlp``: a trained :class:`flowlab.models.VelocityMLP` (4 hidden layers of 256; two_moons 2-D... see
  ``--mlp-toy2d`` / ``--mlp-toy3d``).
* ``steps``: Hunyuan3D-2's compatibility schedule (N calls, N - 1 effective steps) against the corrected
  one (N calls, N steps), on both velocity fields.

Implementations, timed on the same ``x`` (median of several runs after warm-up, CUDA events):

* ``flowlab fast``: :func:`flowlab.fast.gmm_euler` / :func:`flowlab.fast.mlp_euler` (several backends and
  precisions for the MLP);
* ``flowlab reference``: :func:`flowlab.sampling.sample`;
* ``flow_matching ODESolver``: facebookresearch/flow_matching, ``method="euler"`` on the same time grid;
* ``diffusers FlowMatchEuler``: a ``FlowMatchEulerDiscreteScheduler`` loop (conventional time, custom sigmas
  = the mirrored schedule, the model flipped with :func:`flowlab.sampling.flip`);
* ``plain torch loop``: ``x = x + (t[i+1] - t[i]) * model(x, t[i])``;
* the best a torch user would write for the MLP (CUDA only): that loop under fp16 / bf16 autocast, with
  ``torch.compile`` (default mode, and ``reduce-overhead``, which adds CUDA graphs), and the whole fp16-autocast
  loop captured as one CUDA graph. Compilation and capture happen in the untimed warm-up.

Every table ends with the headline: the fastest flowlab row against the FASTEST peer row of that table.

Reported per row: median time, the ratio peer / flowlab fast, the max difference of the output to the
float64 exact result (gmm) or to the fp32 reference result (mlp), and the sliced W2 distance to fresh
samples of the target (on the first ``--metric-n`` particles). "Seed noise" is the same metric for the
fp32 reference run from a second noise seed.

    python benchmarks/toy_peers.py            # on a CUDA GPU
    python benchmarks/toy_peers.py --smoke    # CPU, seconds: keeps the script from rotting
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import Timing, card_name, time_fn  # noqa: E402

from flowlab import schedules as S  # noqa: E402
from flowlab.fast import GraphedMLPEuler, gmm_euler, mlp_euler, triton_available  # noqa: E402
from flowlab.gmm import PRESETS  # noqa: E402
from flowlab.metrics import sliced_wasserstein  # noqa: E402
from flowlab.models import MLPConfig, VelocityMLP, train  # noqa: E402
from flowlab.sampling import CallCounter, flip, sample  # noqa: E402
from flowlab.toys import sample_toy  # noqa: E402

Model = Callable[[Tensor, Tensor], Tensor]


@dataclass
class Row:
    """One implementation's result on one workload."""

    name: str
    kind: str  # "fast", "reference" or "peer"
    timing: Timing | None
    out: Tensor | None
    note: str = ""


# ---- peers -------------------------------------------------------------------------------------------

class LeanGMMVelocity:
    """The exact isotropic-mixture velocity as a peer would write it in plain torch (the peers' model).

    ``x: (B, D)``, ``t: (B,)`` in ``convention``'s time; per call: ``var = a^2 s^2 + b^2``,
    ``p = softmax(log w - D/2 log var - |x - a mu|^2 / (2 var))``, ``v = sum_k p_k (a' mu_k + c_k (x - a mu_k))``
    with ``c_k = (a' a s_k^2 + b' b) / var_k``. Independent of flowlab.fast (no tables).
    """

    def __init__(self, gmm: object, convention: str, device: torch.device) -> None:
        from flowlab import get_convention

        self.conv = get_convention(convention)
        self.mu = gmm.means.to(device, torch.float32)
        self.s2 = gmm.eigvals[:, 0].to(device, torch.float32)
        self.logw = gmm.weights.log().to(device, torch.float32)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        a, b, da, db = (c[:, None] for c in self.conv.coefficients(t.to(x.dtype)))  # (B, 1)
        var = a * a * self.s2 + b * b  # (B, K)
        r = x[:, None, :] - a[:, :, None] * self.mu  # (B, K, D)
        logit = self.logw - 0.5 * x.shape[1] * var.log() - (r * r).sum(-1) / (2 * var)
        p = torch.softmax(logit, dim=-1)
        c = (da * a * self.s2 + db * b) / var
        return da * (p @ self.mu) + ((p * c)[:, :, None] * r).sum(1)


def plain_loop(model: Model, x: Tensor, ts: Tensor) -> Tensor:
    """``x = x + (t[i+1] - t[i]) * model(x, t[i])``: what anyone would write first."""
    for i in range(ts.shape[0] - 1):
        x = x + (ts[i + 1] - ts[i]) * model(x, ts[i].expand(x.shape[0]))
    return x


def flow_matching_peer(model: Model, ts: Tensor) -> Callable[[Tensor], Tensor] | str:
    """facebookresearch/flow_matching ``ODESolver(...).sample(method="euler", time_grid=ts)`` (t: 0 noise -> 1 data)."""
    try:
        from flow_matching.solver import ODESolver
        from flow_matching.utils import ModelWrapper
    except ImportError as exc:
        return f"not installed ({exc.name})"

    class Wrapped(ModelWrapper):
        def forward(self, x: Tensor, t: Tensor, **extras: object) -> Tensor:  # noqa: ARG002 (ODESolver's API)
            return self.model(x, t.expand(x.shape[0]))

    solver = ODESolver(velocity_model=Wrapped(model))
    return lambda x: solver.sample(x_init=x, step_size=None, method="euler", time_grid=ts)


def diffusers_peer(model_conventional: Model, sigmas: Tensor) -> Callable[[Tensor], Tensor] | str:
    """A ``FlowMatchEulerDiscreteScheduler`` loop with custom ``sigmas`` (conventional, 1 noise -> 0 data)."""
    try:
        from diffusers import FlowMatchEulerDiscreteScheduler
    except ImportError as exc:
        return f"not installed ({exc.name})"
    sched = FlowMatchEulerDiscreteScheduler()
    custom = sigmas[:-1].detach().cpu().numpy().tolist()  # the scheduler appends the terminal 0

    def run(x: Tensor) -> Tensor:
        sched.set_timesteps(sigmas=custom, device=x.device)
        for t in sched.timesteps:  # t = 1000 sigma, on x's device; the model reads sigma = t / 1000
            v = model_conventional(x, (t / sched.config.num_train_timesteps).expand(x.shape[0]))
            x = sched.step(v, t, x, return_dict=False)[0]
        return x

    return run


class GraphedLoop:
    """The whole ``plain_loop`` under autocast captured as one CUDA graph (a static input buffer, replayed)."""

    def __init__(self, model: Model, ts: Tensor, dtype: torch.dtype) -> None:
        self.model, self.ts, self.dtype = model, ts, dtype
        self.graph: torch.cuda.CUDAGraph | None = None

    def _loop(self, x: Tensor) -> Tensor:
        with torch.autocast("cuda", dtype=self.dtype, cache_enabled=False):  # no weight cache inside a capture
            return plain_loop(self.model, x, self.ts)

    def __call__(self, x: Tensor) -> Tensor:
        if self.graph is None or self.static_x.shape != x.shape:
            self.static_x = x.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm up outside the capture (cuBLAS handles, allocator)
                self._loop(self.static_x)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_out = self._loop(self.static_x)
        self.static_x.copy_(x)
        self.graph.replay()
        return self.static_out


def best_torch_peers(model: Model, ts: Tensor) -> list[tuple[str, str, Callable[[Tensor], Tensor] | str]]:
    """What a torch user would write at best for a velocity MLP on a GPU: autocast, torch.compile, a CUDA graph."""
    def autocast(fn: Model, dtype: torch.dtype) -> Callable[[Tensor], Tensor]:
        def run(x: Tensor) -> Tensor:
            with torch.autocast("cuda", dtype=dtype):
                return plain_loop(fn, x, ts)
        return run

    spec: list[tuple[str, str, Callable[[Tensor], Tensor] | str]] = [
        ("plain torch loop, fp16 autocast", "peer", autocast(model, torch.float16)),
        ("plain torch loop, bf16 autocast", "peer", autocast(model, torch.bfloat16)),
        ("whole fp16-autocast loop as one CUDA graph", "peer", GraphedLoop(model, ts, torch.float16)),
    ]
    for mode in ("default", "reduce-overhead"):
        try:
            compiled = torch.compile(model, mode=mode, dynamic=False)
            spec.append((f"torch.compile({mode}) model, fp16 autocast loop", "peer", autocast(compiled, torch.float16)))
        except Exception as exc:  # noqa: BLE001 - a peer that cannot be built is reported, not fatal
            spec.append((f"torch.compile({mode}) model, fp16 autocast loop", "peer",
                         f"FAILED: {type(exc).__name__}: {str(exc)[:160]}"))
    return spec


# ---- one workload ------------------------------------------------------------------------------------

def run_rows(rows_spec: list[tuple[str, str, Callable[[Tensor], Tensor] | str]], x: Tensor, device: torch.device,
             reps: int, warmup: int) -> list[Row]:
    rows = []
    for name, kind, fn in rows_spec:
        if isinstance(fn, str):
            rows.append(Row(name, kind, None, None, fn))
            continue
        try:
            with torch.inference_mode():
                timing = time_fn(lambda: fn(x), device, warmup=warmup, reps=reps)
            rows.append(Row(name, kind, timing, timing.result.detach()))
            timing.result = None
        except Exception as exc:  # a failing variant must not hide the others' numbers
            rows.append(Row(name, kind, None, None, f"FAILED: {type(exc).__name__}: {str(exc)[:160]}"))
        print(f"  . {name}: {rows[-1].timing.median if rows[-1].timing else rows[-1].note}", flush=True)
    return rows


def report(title: str, rows: list[Row], ref: Tensor, ref_label: str, data: Tensor, metric_n: int,
           seed_noise: float | None, results: list[dict]) -> None:
    """Print the table of one workload and append it to ``results``."""
    fast = [r for r in rows if r.kind == "fast" and r.timing is not None]
    best = min(fast, key=lambda r: r.timing.median) if fast else None
    print(f"\n== {title}")
    hdr = f"{'implementation':50s} {'median ms':>10s} {'spread':>7s} {'peer/fast':>10s} {'max|out-' + ref_label + '|':>16s} " \
          f"{'rms diff':>9s} {'SW2 to data':>12s}"
    print(hdr)
    entries = []
    for r in rows:
        if r.timing is None:
            print(f"{r.name:50s} {r.note}")
            entries.append({"name": r.name, "kind": r.kind, "note": r.note})
            continue
        out = r.out.to(ref.dtype)
        finite = bool(torch.isfinite(out).all())
        diff = float((out - ref).abs().max()) if finite else float("nan")
        rms = float((out - ref).square().mean().sqrt()) if finite else float("nan")
        sw = sliced_wasserstein(out[:metric_n].float(), data) if finite else float("nan")
        ratio = r.timing.median / best.timing.median if best is not None else float("nan")
        mark = " <- fastest flowlab" if r is best else ""
        print(f"{r.name:50s} {r.timing.median:10.3f} {r.timing.spread:7.1%} {ratio:9.1f}x {diff:16.3e} {rms:9.1e} "
              f"{sw:12.5f}{mark}")
        entries.append({"name": r.name, "kind": r.kind, "median_ms": r.timing.median, "runs_ms": r.timing.runs_ms,
                        "ratio_vs_fast": ratio, "max_diff": diff, "rms_diff": rms, "sw2_to_data": sw, "note": r.note})
    peers = [r for r in rows if r.kind == "peer" and r.timing is not None]
    fastest_peer = min(peers, key=lambda r: r.timing.median) if peers else None
    if best is not None and fastest_peer is not None:
        print(f"headline: {best.name} {best.timing.median:.3f} ms vs the fastest peer, {fastest_peer.name}, "
              f"{fastest_peer.timing.median:.3f} ms: {fastest_peer.timing.median / best.timing.median:.2f}x")
    if seed_noise is not None:
        print(f"{'seed noise: fp32 reference, 2nd noise seed':50s} {'':10s} {'':7s} {'':10s} {'':16s} {'':9s} "
              f"{seed_noise:12.5f}")
    results.append({"title": title, "ref": ref_label, "rows": entries, "seed_noise_sw2": seed_noise,
                    "fastest": best.name if best else None,
                    "fastest_peer": fastest_peer.name if fastest_peer else None,
                    "headline_ratio": (fastest_peer.timing.median / best.timing.median
                                       if best is not None and fastest_peer is not None else None)})


def gmm_workload(toy: str, n: int, steps: int, device: torch.device, args: argparse.Namespace,
                 results: list[dict], *, peers: bool = True) -> None:
    gmm = PRESETS[toy]()
    conv = "reversed"
    ts = S.uniform(steps, conv, device=device)
    sig = S.to_conventional(ts)
    g = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(n, gmm.dim, generator=g).to(device)
    data = sample_toy(toy, args.metric_n, generator=torch.Generator().manual_seed(7), device=device)
    model = gmm.velocity_model(conv)
    lean = LeanGMMVelocity(gmm, conv, device)
    with torch.inference_mode():
        ref64 = sample(model, x.double(), ts, conv)
    spec: list[tuple[str, str, Callable[[Tensor], Tensor] | str]] = []
    backend = "triton" if device.type == "cuda" and triton_available() else "torch"
    spec.append((f"flowlab fast gmm_euler ({backend}, reversed)", "fast", lambda x: gmm_euler(gmm, x, ts, conv)))
    spec.append((f"flowlab fast gmm_euler ({backend}, conventional)", "fast",
                 lambda x: gmm_euler(gmm, x, sig, "conventional")))
    big = n > args.n
    slow: list[tuple[str, str, Callable[[Tensor], Tensor] | str]] = [
        ("flowlab reference sample() (GaussianMixture)", "reference", lambda x: sample(model, x, ts, conv))]
    if peers and not big:  # the peers get the lean plain-torch velocity: the fastest fair competitor
        slow.append(("flow_matching ODESolver euler (lean v)", "peer", flow_matching_peer(lean, ts)))
        slow.append(("diffusers FlowMatchEuler loop (lean v)", "peer",
                     diffusers_peer(LeanGMMVelocity(gmm, "conventional", device), sig)))
        slow.append(("plain torch loop (GaussianMixture)", "peer", lambda x: plain_loop(model, x, ts)))
    if peers:
        slow.append(("plain torch loop (lean v)", "peer", lambda x: plain_loop(lean, x, ts)))
    rows = run_rows(spec, x, device, 3 if big else args.reps_fast, args.warmup)
    rows += run_rows(slow, x, device, 1 if big else args.reps_slow, 0 if big else 1)
    report(f"gmm {toy} {gmm.dim}-D exact velocity, N={n:.0e}, S={steps}, float32 x, card {card_name(device)}",
           rows, ref64, "f64 exact", data, args.metric_n, None, results)


def train_mlp(toy: str, device: torch.device, args: argparse.Namespace) -> torch.nn.Module:
    data = sample_toy(toy, 200_000 if not args.smoke else 4096, generator=torch.Generator().manual_seed(3),
                      device=device)
    cfg = MLPConfig(dim=data.shape[1], hidden=args.hidden, depth=4, time_dim=16)
    t0 = time.perf_counter()
    res = train(data, "reversed", config=cfg, steps=args.train_steps, batch_size=args.train_batch, lr=1e-3, seed=0)
    loss = float(res.losses[-100:].mean())
    print(f"  trained {toy} MLP {cfg.as_dict()} for {args.train_steps} steps in {time.perf_counter() - t0:.1f} s, "
          f"final loss {loss:.4f}", flush=True)
    return res.model


def mlp_workload(toy: str, model: torch.nn.Module, n: int, steps: int, device: torch.device,
                 args: argparse.Namespace, results: list[dict], *, peers: bool = True, variants: bool = True) -> None:
    conv = "reversed"
    ts = S.uniform(steps, conv, device=device)
    sig = S.to_conventional(ts)
    dim = model.config.dim
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(1)).to(device)
    x2 = torch.randn(n, dim, generator=torch.Generator().manual_seed(2)).to(device)
    data = sample_toy(toy, args.metric_n, generator=torch.Generator().manual_seed(7), device=device)
    big = n > args.n
    with torch.inference_mode():
        t_ref = time_fn(lambda: sample(model, x, ts, conv), device, warmup=0 if big else args.warmup,
                        reps=1 if big else args.reps_slow)
        ref32 = t_ref.result
        seed_noise = None if big else sliced_wasserstein(sample(model, x2, ts, conv)[:args.metric_n], data)
    spec: list[tuple[str, str, Callable[[Tensor], Tensor] | str]] = []
    cuda = device.type == "cuda"
    triton_rows: dict[str, tuple] = {}
    if cuda:
        graph_cfgs = [("fp16", 262144), ("bf16", 262144), ("fp32", 262144), ("fp16", 65536)] if variants \
            else [("fp16", 262144)]
        for prec, chunk in graph_cfgs:
            try:
                fn: Callable[[Tensor], Tensor] | str = GraphedMLPEuler(model, n, ts, conv, precision=prec,
                                                                     chunk=min(chunk, n))
            except Exception as exc:
                fn = f"FAILED: {type(exc).__name__}: {str(exc)[:160]}"
            spec.append((f"flowlab fast graph {prec} chunk {chunk}", "fast", fn))
        cfgs = args.triton_ok if variants else args.triton_ok[:1]
        precs = [("fp16", "fast", cfg) for cfg in cfgs]
        if variants and cfgs:  # bf16, and the exact fp32 sigmoid instead of the hardware tanh
            precs += [("bf16", "fast", cfgs[0]), ("fp16", "exact", cfgs[0])]
        for prec, silu, (block, warps, stages) in precs:
            name = f"flowlab fast triton {prec} BM{block} w{warps} s{stages}" + (" exact SiLU" if silu == "exact" else "")
            if silu == "fast":
                triton_rows[name] = (block, warps, stages)
            spec.append((name, "fast", lambda x, p=prec, b=block, w=warps, s=stages, u=silu: mlp_euler(
                model, x, ts, conv, precision=p, backend="triton", block=b, num_warps=w, num_stages=s, silu=u)))
    else:
        for prec in ("fp32", "fp16"):
            spec.append((f"flowlab fast torch {prec}", "fast",
                         lambda x, p=prec: mlp_euler(model, x, ts, conv, precision=p, backend="torch")))
    if peers and not big:
        spec.append(("flow_matching ODESolver euler", "peer", flow_matching_peer(model, ts)))
        spec.append(("diffusers FlowMatchEuler loop (flip(model))", "peer", diffusers_peer(flip(model), sig)))
    if peers:
        spec.append(("plain torch loop", "peer", lambda x: plain_loop(model, x, ts)))
    if peers and cuda:
        spec += best_torch_peers(model, ts)
    fast_spec = [s for s in spec if s[1] == "fast"]
    rows = run_rows(fast_spec, x, device, 2 if big else max(1, args.reps_fast // 2), min(1, args.warmup))
    timed = [r for r in rows if r.name in triton_rows and r.timing is not None and "fp16" in r.name]
    if variants and timed:  # the fastest fp16 Triton config goes first for the later workloads
        best = triton_rows[min(timed, key=lambda r: r.timing.median).name]
        args.triton_ok = [best] + [c for c in args.triton_ok if c != best]
    rows.append(Row("flowlab reference sample()", "reference", t_ref, ref32))
    rows += run_rows([s for s in spec if s[1] != "fast"], x, device, 1 if big else args.reps_slow,
                     0 if big else min(1, args.warmup))
    report(f"mlp {toy} {dim}-D VelocityMLP 4x{model.config.hidden}, N={n:.0e}, S={steps}, float32 x, "
           f"card {card_name(device)}", rows, ref32, "fp32 ref", data, args.metric_n, seed_noise, results)


def fast_mlp(model: torch.nn.Module, x: Tensor, ts: Tensor, args: argparse.Namespace) -> Tensor:
    """The fastest MLP fast path found in this run (fp16 Triton if a config passed its probe, else torch)."""
    if args.triton_ok:
        block, warps, stages = args.triton_ok[0]
        return mlp_euler(model, x, ts, "reversed", precision="fp16", backend="triton", block=block,
                         num_warps=warps, num_stages=stages)
    return mlp_euler(model, x, ts, "reversed", precision="fp16", backend="torch")


def steps_workload(device: torch.device, mlp: torch.nn.Module, args: argparse.Namespace, results: list[dict]) -> None:
    """Item 3: N model calls give N effective steps with the corrected schedule, N - 1 with the compat one."""
    n, calls = args.n, args.steps
    print(f"\n== schedule: Hunyuan3D-2 compat vs corrected, {calls} model calls, N={n:.0e}, card {card_name(device)}")
    print(f"{'velocity':22s} {'schedule':10s} {'calls':>6s} {'effective':>9s} {'fast ms':>9s} {'ref ms':>9s} "
          f"{'SW2 to data':>12s}")
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(1)).to(device)
    data = sample_toy("eight_gaussians", args.metric_n, generator=torch.Generator().manual_seed(7), device=device)
    gmm = PRESETS["eight_gaussians"]()
    entries = []
    for label, model, fast in (
            ("gmm eight_gaussians", gmm.velocity_model("reversed"), lambda x, ts: gmm_euler(gmm, x, ts, "reversed")),
            (f"mlp {args.mlp_toy2d}", mlp, lambda x, ts: fast_mlp(mlp, x, ts, args))):
        for sched_name, ts in (("compat", S.hunyuan_compat(calls, device=device)),
                               ("corrected", S.hunyuan_corrected(calls, device=device))):
            counter = CallCounter(model)
            with torch.inference_mode():
                out = sample(counter, x, ts, "reversed")
                t_fast = time_fn(lambda: fast(x, ts), device, warmup=1, reps=args.reps_fast)
                t_ref = time_fn(lambda: sample(model, x, ts, "reversed"), device, warmup=0, reps=1)
            d = data if label.startswith("gmm") else sample_toy(args.mlp_toy2d, args.metric_n,
                                                               generator=torch.Generator().manual_seed(7),
                                                               device=device)
            sw = sliced_wasserstein(out[:args.metric_n], d)
            eff = S.n_effective_steps(ts)
            print(f"{label:22s} {sched_name:10s} {counter.calls:6d} {eff:9d} {t_fast.median:9.3f} {t_ref.median:9.1f} "
                  f"{sw:12.5f}")
            entries.append({"velocity": label, "schedule": sched_name, "calls": counter.calls, "effective_steps": eff,
                            "fast_ms": t_fast.median, "ref_ms": t_ref.median, "sw2_to_data": sw})
    results.append({"title": "schedule compat vs corrected", "rows": entries})


TRITON_CONFIGS = [(128, 8, 1), (64, 4, 1)]  # (particles per program, warps, pipeline stages)


def probe(cfg: str) -> int:
    """Check one Triton MLP config in this process (a crash here must not take the benchmark down)."""
    block, warps, stages = cfg.split(",")
    torch.manual_seed(0)
    worst = 0.0
    for dim in (2, 3):
        model = VelocityMLP(MLPConfig(dim=dim, hidden=256, depth=4, time_dim=16), "reversed").cuda().eval()
        x = torch.randn(5003, dim, device="cuda")
        ts = S.uniform(20, "reversed")
        ref = mlp_euler(model, x, ts, "reversed", precision="fp16", backend="torch")
        out = mlp_euler(model, x, ts, "reversed", precision="fp16", backend="triton", block=int(block),
                        num_warps=int(warps), num_stages=int(stages))
        torch.cuda.synchronize()
        if not bool(torch.isfinite(out).all()):
            print("non-finite output")
            return 1
        worst = max(worst, float((out - ref).abs().max()))
    print(f"max |triton - torch fp16| = {worst:.2e}")
    return 0 if worst < 2e-2 else 1


def probe_all(configs: list[tuple]) -> list[tuple]:
    """Run :func:`probe` for every config, each in its own process, in parallel; the ones that pass."""
    import subprocess

    procs = [(cfg, subprocess.Popen([sys.executable, os.path.abspath(__file__), "--probe", ",".join(map(str, cfg))],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)) for cfg in configs]
    ok = []
    for cfg, proc in procs:
        try:
            out, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        lines = [line for line in (out or "").strip().splitlines() if line.strip()]
        last = lines[-1][:200] if lines else ""
        print(f"  probe triton MLP {cfg}: {'ok' if proc.returncode == 0 else 'FAILED'} ({last})", flush=True)
        if proc.returncode == 0:
            ok.append(cfg)
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, seconds (for the test suite)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--n", type=int, default=1_000_000, help="particles")
    p.add_argument("--big", type=int, default=10_000_000, help="particles of the large runs (0: skip them)")
    p.add_argument("--steps", type=int, default=100, help="Euler steps")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--train-steps", type=int, default=2000)
    p.add_argument("--train-batch", type=int, default=4096)
    p.add_argument("--mlp-toy2d", default="eight_gaussians")
    p.add_argument("--mlp-toy3d", default="torus")
    p.add_argument("--metric-n", type=int, default=200_000, help="particles used for the distribution metric")
    p.add_argument("--reps-fast", type=int, default=10)
    p.add_argument("--reps-slow", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--only", default="gmm,mlp,steps,3d,big", help="comma list of parts to run")
    p.add_argument("--json", default=None, help="write all numbers here")
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        return probe(args.probe)
    if args.smoke:
        args.device = args.device or "cpu"
        args.n, args.big, args.steps, args.hidden = 256, 0, 4, 16
        args.train_steps, args.train_batch, args.metric_n = 3, 64, 256
        args.reps_fast, args.reps_slow, args.warmup = 1, 1, 0
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    args.chunks = [65536, 262144] if not args.smoke else [256]
    args.triton_ok = probe_all(TRITON_CONFIGS) if device.type == "cuda" and triton_available() else []
    parts = set(args.only.split(","))
    torch.manual_seed(0)
    print(f"card: {card_name(device)}; torch {torch.__version__}; triton: {triton_available()}", flush=True)
    results: list[dict] = []
    if "gmm" in parts:
        gmm_workload("eight_gaussians", args.n, args.steps, device, args, results)
        if "3d" in parts:
            gmm_workload("cube_corners", args.n, args.steps, device, args, results)
        if "big" in parts and args.big:
            gmm_workload("eight_gaussians", args.big, args.steps, device, args, results)
    mlp2 = None
    if "mlp" in parts or "steps" in parts:
        mlp2 = train_mlp(args.mlp_toy2d, device, args)
    if "mlp" in parts:
        mlp_workload(args.mlp_toy2d, mlp2, args.n, args.steps, device, args, results)
        if "3d" in parts:
            mlp3 = train_mlp(args.mlp_toy3d, device, args)
            mlp_workload(args.mlp_toy3d, mlp3, args.n, args.steps, device, args, results, variants=False)
        if "big" in parts and args.big:
            mlp_workload(args.mlp_toy2d, mlp2, args.big, args.steps, device, args, results, variants=False)
    if "steps" in parts:
        steps_workload(device, mlp2, args, results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"card": card_name(device), "torch": torch.__version__, "results": results}, fh, indent=1)
    print("\nsummary (fastest flowlab path vs each other row, median times)")
    for res in results:
        if "fastest" not in res or res["fastest"] is None:
            continue
        fast = next(r for r in res["rows"] if r["name"] == res["fastest"])
        others = ", ".join(f"{r['name']} {r['ratio_vs_fast']:.1f}x" for r in res["rows"]
                           if r["kind"] != "fast" and "median_ms" in r)
        head = (f" HEADLINE vs the fastest peer ({res['fastest_peer']}): {res['headline_ratio']:.2f}x;"
                if res.get("headline_ratio") else "")
        print(f"- {res['title']}: {res['fastest']} {fast['median_ms']:.3f} ms;{head} {others}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
