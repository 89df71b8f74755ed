"""``check_prediction``: a user's data (or noise) prediction function against the derived truth.

The contract: ``fn(x, v, t) -> prediction`` with ``x, v: (B, dim)`` and ``t`` the time on the user's scale
(``t_form="column"``: a ``(B, 1)`` tensor; ``"batch"``: ``(B,)``; ``"scalar"``: a Python float, one call per
group of rows that share a time). flowlab builds the inputs from KNOWN data and noise: ``D`` from an asymmetric
Gaussian mixture, ``E`` standard Gaussian, ``x = alpha(t) D + beta(t) E`` and ``v = alpha'(t) D + beta'(t) E``
(the conditional velocity), so the right data prediction is ``D`` itself and the right noise prediction ``E``
(conventional: ``x - sigma v`` / ``x + (1 - sigma) v``; reversed: ``x + (1 - t) v`` / ``x - t v``). Times are
random in [0.05, 0.95], at least 0.05 away from 1/2, so no mistaken formula agrees with the right one by chance.

Each known mistake is evaluated on the same inputs and compared with what the function returned: the other
endpoint (``noise_as_data``), ``-v`` (``sign_flip``), ``1 - t`` for ``t`` (``t_vs_sigma``), the time off by the
scale (``time_scale``), the time rounded to half precision (``fp16_time``); plus ``mutates_input`` and
``bad_output``. Anything else wrong is ``unknown_mismatch`` with its size.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..conventions import get_convention
from ..errors import FlowlabError
from ._exact import probe_mixture, rel_rms
from .report import Finding, Report

__all__ = ["check_prediction", "T_FORMS"]

T_FORMS = ("column", "batch", "scalar")
_TOL = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def _times(n: int, g: torch.Generator) -> Tensor:
    t = 0.05 + 0.9 * torch.rand(4 * n, generator=g, dtype=torch.float64)
    t = t[(t - 0.5).abs() > 0.05]
    return t[:n]


def _call(fn: Callable[..., Any], x: Tensor, v: Tensor, tu: Tensor, t_form: str) -> Any:
    if t_form == "column":
        return fn(x, v, tu[:, None])
    if t_form == "batch":
        return fn(x, v, tu)
    outs = []
    for i in range(0, x.shape[0], 8):
        out = fn(x[i:i + 8], v[i:i + 8], float(tu[i]))
        if not isinstance(out, Tensor):
            return out
        outs.append(out)
    return torch.cat(outs)


def check_prediction(fn: Callable[..., Any], convention: Any = "conventional", kind: str = "data", *,
                     time_scale: float = 1.0, t_form: str = "column", dim: int = 3, batch: int = 64,
                     dtype: torch.dtype = torch.float32, seed: int = 0, name: str | None = None) -> Report:
    """Check ``fn(x, v, t)``, meant to return the ``kind`` ("data" or "noise") prediction in ``convention``.

    ``time_scale``: what the function's ``t`` is multiplied by (1000 for 0-1000 timesteps). See the module
    docstring for the contract and the findings.
    """
    conv = get_convention(convention)
    if kind not in ("data", "noise"):
        raise FlowlabError(f"kind must be 'data' (pred of the data endpoint) or 'noise', got {kind!r}")
    if t_form not in T_FORMS:
        raise FlowlabError(f"t_form must be one of {', '.join(T_FORMS)}, got {t_form!r}")
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)) or not time_scale > 0:
        raise FlowlabError(f"time_scale must be a positive number, got {time_scale!r}")
    if dtype not in _TOL:
        raise FlowlabError(f"dtype must be one of {', '.join(str(d) for d in _TOL)}, got {dtype!r}")
    if not callable(fn):
        raise FlowlabError(f"fn must be a callable fn(x, v, t) -> prediction, got {type(fn).__name__}")
    subject = name or getattr(fn, "__qualname__", None) or repr(fn)
    g = torch.Generator().manual_seed(seed)
    d = probe_mixture(dim).sample(batch, generator=g, dtype=torch.float64)
    e = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    t = _times(batch, g)
    if t_form == "scalar":
        t = t[::8].repeat_interleave(8)[:batch]
    a, b, da, db = (c[:, None] for c in conv.coefficients(t))
    x, v = (a * d + b * e).to(dtype), (da * d + db * e).to(dtype)
    tu = (t * time_scale).to(dtype)
    copies = (x.clone(), v.clone(), tu.clone())
    try:
        out = _call(fn, x, v, tu, t_form)
    except Exception as exc:
        raise FlowlabError(f"{subject} raised {type(exc).__name__}: {exc}; it is called as fn(x, v, t) with x, v "
                           f"of shape {tuple(x.shape)} and t {'(B, 1)' if t_form == 'column' else t_form}") from None
    findings = []
    changed = [n for n, now, before in zip(("x", "v", "t"), (x, v, tu), copies) if not torch.equal(now, before)]
    if changed:
        findings.append(Finding("mutates_input", f"the function overwrote its input(s) {', '.join(changed)} in place",
                                {"inputs": changed}))
    bad = _bad(out, x)
    if bad:
        return Report(subject, tuple(findings + [Finding("bad_output", bad)]), {})
    truth, other = (d, e) if kind == "data" else (e, d)
    x64, v64, got = copies[0].double(), copies[1].double(), out.detach().double()
    err = rel_rms(got, truth)
    tol = _TOL[dtype]
    facts = {"error": err, "tolerance": tol, "t_range": [float(t.min()), float(t.max())]}
    if err > tol:
        findings.append(_diagnose(conv, kind, x64, v64, t, got, other, err, tol, time_scale))
    return Report(subject, tuple(findings), facts)


def _bad(out: Any, x: Tensor) -> str | None:
    if not isinstance(out, Tensor):
        return f"the function returned a {type(out).__name__}, not a tensor"
    if tuple(out.shape) != tuple(x.shape):
        return f"the prediction has shape {tuple(out.shape)}, expected {tuple(x.shape)} (like x)"
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        return "the prediction is not a finite floating tensor"
    return None


def _diagnose(conv: Any, kind: str, x: Tensor, v: Tensor, t: Tensor, got: Tensor, other: Tensor, err: float,
              tol: float, time_scale: float) -> Finding:
    pred = conv._pred_data if kind == "data" else conv._pred_noise  # unchecked: mistaken times are evaluated
    loose = max(tol, 1e-6)
    sym = conv.symbol
    if rel_rms(got, other) <= loose:
        want = {"data": "the data", "noise": "the noise"}[kind]
        got_is = "noise" if kind == "data" else "data"
        return Finding("noise_as_data", f"the function returns the {got_is} prediction where {want} is meant "
                       f"(the {conv.name} convention's data is at {sym} = {conv.t_data}; Hunyuan3D-2 #124)",
                       {"error": err})
    if rel_rms(got, pred(x, -v, t)) <= loose:
        return Finding("sign_flip", "the velocity enters with the wrong sign (x - (s - t) v for x + (s - t) v)",
                       {"error": err})
    if rel_rms(got, pred(x, v, 1 - t)) <= loose:
        return Finding("t_vs_sigma", f"the function uses 1 - {sym} where {sym} is meant", {"error": err})
    for f in sorted({time_scale, 1 / time_scale, 1000.0, 1e-3} - {1.0}):
        if rel_rms(got, pred(x, v, t * f)) <= loose:
            return Finding("time_scale", f"the function reads the time {f:g}x off its scale "
                           f"(declared time_scale = {time_scale:g})", {"factor": f, "error": err})
    for half in (torch.float16, torch.bfloat16):
        for s in (1.0, 1000.0, time_scale):
            th = (t * s).to(half).double() / s
            if rel_rms(got, pred(x, v, th)) <= 1e-5 < rel_rms(pred(x, v, th), pred(x, v, t)):
                return Finding("fp16_time", f"the function rounds the time to {str(half)[6:]} (on a 0-{s:g} scale)",
                               {"error": err})
    return Finding("unknown_mismatch", f"the prediction is off by {err:.3g} (relative RMS; tolerance {tol:.0e}) and "
                   "matches none of the known mistakes", {"error": err, "tolerance": tol})
