"""``check_scheduler``: the inspector as an assertion about a scheduler object.

::

    from flowlab.testing import check_scheduler
    report = check_scheduler(FlowMatchEulerDiscreteScheduler(shift=3.0),
                             expect={"direction": "decreasing", "time_scale": 1000, "shift": 3.0,
                                     "model_output": "velocity", "solver_order": 1})
    assert report.ok, report

The scheduler is read by :func:`flowlab.inspector.inspect` (one affine probe per step) or, for multistep
and higher-order schedulers (and affine steps that are not Euler, such as DDIM), driven with an exact
Gaussian-mixture model (:mod:`flowlab.probe_exact`). Every entry of ``expect`` that the scheduler does not
meet is a :class:`~flowlab.testing.report.Finding`; model calls that move nothing are findings unless
``expect["noop_steps"]`` says how many there should be.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from ..errors import FlowlabError
from .report import Finding, Report

__all__ = ["check_scheduler", "EXPECT_KEYS", "OUTPUT_NAMES"]

#: What ``expect`` may hold.
EXPECT_KEYS = ("direction", "convention", "time_scale", "shift", "model_output", "solver_order", "noop_steps")

#: Names accepted for ``expect["model_output"]`` and the canonical output they mean (``velocity``: dx/d(time)).
OUTPUT_NAMES = {"E - D": "E - D", "D - E": "D - E", "velocity": "velocity", "flow_prediction": "velocity",
                "epsilon": "epsilon", "eps": "epsilon", "noise": "epsilon", "data": "data", "x0": "data",
                "sample": "data", "v": "v", "v_prediction": "v"}

_SHIFT_RTOL = 1e-2
_SCALE_RTOL = 1e-3


def _canonical_output(text: str | None) -> str | None:
    if text is None:
        return None
    if text in ("E - D", "D - E"):
        return text
    if text.startswith("E (the noise"):
        return "epsilon"
    if text.startswith("D (the data"):
        return "data"
    if "v-prediction" in text:
        return "v"
    return text


def _check_expect(expect: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(expect, dict):
        raise FlowlabError(f"expect must be a dict with keys among {', '.join(EXPECT_KEYS)}, got {type(expect).__name__}")
    unknown = [k for k in expect if k not in EXPECT_KEYS]
    if unknown:
        raise FlowlabError(f"expect has unknown key {unknown[0]!r}; known keys: {', '.join(EXPECT_KEYS)}")
    if "direction" in expect and expect["direction"] not in ("decreasing", "increasing"):
        raise FlowlabError(f"expect['direction'] is 'decreasing' (sigma 1 -> 0) or 'increasing' (t 0 -> 1), "
                           f"got {expect['direction']!r}")
    if "model_output" in expect and expect["model_output"] not in OUTPUT_NAMES:
        raise FlowlabError(f"expect['model_output'] must be one of {', '.join(OUTPUT_NAMES)}, got {expect['model_output']!r}")
    for key in ("time_scale", "shift"):
        v = expect.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
            raise FlowlabError(f"expect[{key!r}] must be a positive finite number, got {v!r}")
    for key in ("solver_order", "noop_steps"):
        v = expect.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise FlowlabError(f"expect[{key!r}] must be a whole number >= 0, got {v!r}")
    return expect


def _read(scheduler: object, num_inference_steps: int | None, sigmas: Sequence[float] | None, mu: float | None):
    from ..inspector import _declared_order, inspect_scheduler
    from ..probe_exact import drive

    card = inspect_scheduler(scheduler, num_inference_steps, sigmas=sigmas, mu=mu)
    if card.affine and card.model_output is None and not any("not deterministic" in f for f in card.findings):
        # affine but not Euler (DDIM-type rescaling): drive it instead
        kwargs: dict = {"sigmas": list(sigmas)} if sigmas is not None else {"num_inference_steps": num_inference_steps}
        if mu is not None:
            kwargs["mu"] = float(mu)
        card = drive(scheduler, kwargs, card.source, _declared_order(scheduler))
    return card


def check_scheduler(scheduler: object, expect: dict[str, Any] | None = None, *, num_inference_steps: int | None = 10,
                    sigmas: Sequence[float] | None = None, mu: float | None = None) -> Report:
    """Check a diffusers-style scheduler object against what you expect of it; see the module docstring."""
    expect = _check_expect(dict(expect or {}))
    card = _read(scheduler, num_inference_steps, sigmas, mu)
    subject = f"scheduler {card.source}"
    if not card.derived:
        why = "; ".join(card.findings) or "no convention could be derived"
        return Report(subject, (Finding("unknown_mismatch", f"flowlab could not read this scheduler: {why}"),),
                      {"n_calls": card.n_calls})
    out = _canonical_output(card.model_output)
    facts = {"direction": card.direction, "convention": card.convention, "time_scale": card.model_time_scale,
             "shift": card.shift, "model_output": out, "solver_order": card.solver_order or (1 if card.affine else None),
             "n_calls": card.n_calls, "effective_steps": card.effective_steps}
    if card.measured_order is not None:
        facts["observed_convergence"] = round(card.measured_order, 2)
    findings = [f for f in _compare(expect, facts, card) if f is not None]
    return Report(subject, tuple(findings), facts)


def _compare(expect: dict[str, Any], facts: dict[str, Any], card) -> list[Finding | None]:  # noqa: ANN001
    found: list[Finding | None] = []
    if "direction" in expect and facts["direction"] != expect["direction"]:
        found.append(Finding("wrong_direction", f"time runs {facts['direction']}, not {expect['direction']} as expected",
                             {"expected": expect["direction"], "found": facts["direction"]}))
    if "convention" in expect and facts["convention"] != expect["convention"]:
        pair = {facts["convention"], expect["convention"]} == {"conventional", "reversed"}
        found.append(Finding("t_vs_sigma" if pair else "unknown_mismatch",
                             f"the scheduler follows the {facts['convention']} convention, not {expect['convention']}",
                             {"expected": expect["convention"], "found": facts["convention"]}))
    if "time_scale" in expect:
        got = facts["time_scale"]
        if got is None or abs(got / expect["time_scale"] - 1) > _SCALE_RTOL:
            found.append(Finding("time_scale", f"the model is called with timestep = {got if got is not None else '?'} "
                                 f"* time, not {expect['time_scale']:g} * time", {"expected": float(expect["time_scale"]),
                                                                                  "found": got}))
    if "shift" in expect:
        got = facts["shift"]
        if got is None or abs(got / expect["shift"] - 1) > _SHIFT_RTOL:
            found.append(Finding("wrong_shift", f"the schedule's shift is {'not an SD3 shift' if got is None else f'{got:.4g}'}"
                                 f", not {expect['shift']:g}", {"expected": float(expect["shift"]), "found": got}))
    if "model_output" in expect:
        want = OUTPUT_NAMES[expect["model_output"]]
        if want == "velocity":
            want = "E - D" if facts["direction"] == "decreasing" else "D - E"
        if facts["model_output"] != want:
            code = "noise_as_data" if {want, facts["model_output"]} == {"data", "epsilon"} else "wrong_output"
            found.append(Finding(code, f"the scheduler expects the model to output {card.model_output}, not {want}",
                                 {"expected": want, "found": facts["model_output"]}))
    if "solver_order" in expect and facts["solver_order"] != expect["solver_order"]:
        found.append(Finding("solver_order", f"the solver's order is {facts['solver_order']}, not {expect['solver_order']}",
                             {"expected": expect["solver_order"], "found": facts["solver_order"]}))
    noops = len(card.noop_steps)
    if noops != expect.get("noop_steps", 0):
        found.append(Finding("wasted_last_step", f"{noops} of {card.n_calls} model calls move nothing (steps "
                             f"{list(card.noop_steps)}): {card.effective_steps} effective steps",
                             {"noop_steps": list(card.noop_steps), "effective_steps": card.effective_steps,
                              "calls": card.n_calls}))
    return found
