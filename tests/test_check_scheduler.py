"""check_scheduler: each diffusers scheduler class gives its known report, and wrong expectations give findings.

The expected values come from diffusers' own documentation of each class (its config: prediction_type,
shift, solver_order, num_train_timesteps), not from flowlab; the mutants are the plausible wrong
declarations (the other direction, another shift or time scale, another model output, another order)."""
from __future__ import annotations

import importlib.util

import pytest

from flowlab import FlowlabError
from flowlab.testing import FINDING_CODES, check_scheduler

pytestmark = pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="needs diffusers==0.42.1")

FLOW = dict(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0)
# (class, constructor options, what diffusers documents for that configuration)
CASES = {
    "euler-flow": ("FlowMatchEulerDiscreteScheduler", {}, dict(direction="decreasing", convention="conventional",
                   time_scale=1000, shift=1.0, model_output="E - D", solver_order=1)),
    "euler-flow-shift3": ("FlowMatchEulerDiscreteScheduler", {"shift": 3.0}, dict(direction="decreasing",
                          time_scale=1000, shift=3.0, model_output="velocity", solver_order=1)),
    "euler-flow-inverted": ("FlowMatchEulerDiscreteScheduler", {"invert_sigmas": True}, dict(
        direction="increasing", convention="reversed", model_output="D - E", solver_order=1)),
    "heun-flow": ("FlowMatchHeunDiscreteScheduler", {}, dict(direction="decreasing", convention="conventional",
                  time_scale=1000, shift=1.0, model_output="E - D", solver_order=2)),
    "dpmpp-eps": ("DPMSolverMultistepScheduler", {}, dict(direction="decreasing", model_output="epsilon",
                  solver_order=2)),
    "dpmpp-v": ("DPMSolverMultistepScheduler", {"prediction_type": "v_prediction"}, dict(model_output="v",
                solver_order=2)),
    "dpmpp-sample": ("DPMSolverMultistepScheduler", {"prediction_type": "sample"}, dict(model_output="x0",
                     solver_order=2)),
    "dpmpp-flow": ("DPMSolverMultistepScheduler", FLOW, dict(direction="decreasing", convention="conventional",
                   time_scale=1000, shift=3.0, model_output="flow_prediction", solver_order=2)),
    "unipc-eps": ("UniPCMultistepScheduler", {}, dict(direction="decreasing", model_output="epsilon", solver_order=2)),
    "unipc-flow": ("UniPCMultistepScheduler", FLOW, dict(direction="decreasing", convention="conventional",
                   time_scale=1000, shift=3.0, model_output="E - D", solver_order=2)),
    "euler-ve-eps": ("EulerDiscreteScheduler", {}, dict(direction="decreasing", model_output="epsilon", solver_order=1)),
    "ddim-eps": ("DDIMScheduler", {"clip_sample": False}, dict(direction="decreasing", model_output="eps",
                 solver_order=1)),
}


def _sched(name: str):
    import diffusers

    cls, opts, _ = CASES[name]
    return getattr(diffusers, cls)(**opts)


@pytest.mark.parametrize("name", list(CASES))
def test_right_expectations_pass(name: str) -> None:
    report = check_scheduler(_sched(name), expect=CASES[name][2])
    assert report.ok, str(report)


def _mutants(expect: dict) -> list[tuple[str, dict, str]]:
    out = []
    flip = {"decreasing": "increasing", "increasing": "decreasing"}
    if "direction" in expect:
        out.append(("direction", {**expect, "direction": flip[expect["direction"]]}, "wrong_direction"))
    if "convention" in expect:
        other = "reversed" if expect["convention"] == "conventional" else "conventional"
        out.append(("convention", {**expect, "convention": other}, "t_vs_sigma"))
    if "shift" in expect:
        out.append(("shift", {**expect, "shift": 3.0 if expect["shift"] == 1.0 else 1.0}, "wrong_shift"))
        out.append(("shift-close", {**expect, "shift": expect["shift"] * 1.2}, "wrong_shift"))
    if "time_scale" in expect:
        out.append(("time_scale", {**expect, "time_scale": 1.0}, "time_scale"))
    out_other = {"E - D": "epsilon", "velocity": "D - E", "flow_prediction": "v", "D - E": "E - D",
                 "epsilon": "v", "eps": "data", "v": "epsilon", "x0": "epsilon"}[expect["model_output"]]
    code = "noise_as_data" if {out_other, expect["model_output"]} <= {"data", "eps", "epsilon", "x0"} else "wrong_output"
    out.append(("model_output", {**expect, "model_output": out_other}, code))
    out.append(("solver_order", {**expect, "solver_order": 3 - expect["solver_order"]}, "solver_order"))
    return out


MUTANTS = [(name, key, exp, code) for name in CASES for key, exp, code in _mutants(CASES[name][2])]


@pytest.mark.parametrize("name, key, expect, code", MUTANTS, ids=[f"{n}-{k}" for n, k, _, _ in MUTANTS])
def test_wrong_expectations_are_findings(name: str, key: str, expect: dict, code: str) -> None:
    report = check_scheduler(_sched(name), expect=expect)
    assert not report.ok
    assert report.codes == (code,), str(report)
    assert code in FINDING_CODES


def test_a_wasted_call_is_a_finding() -> None:
    import diffusers

    # a pipeline that pads the sigmas with a repeated terminal value: the last call moves nothing
    sched = diffusers.FlowMatchEulerDiscreteScheduler()
    report = check_scheduler(sched, expect={"direction": "decreasing"}, sigmas=[1.0, 0.75, 0.5, 0.25, 0.0])
    assert report.codes == ("wasted_last_step",), str(report)
    assert report.findings[0].evidence["noop_steps"] == [4]
    assert check_scheduler(sched, expect={"noop_steps": 1}, sigmas=[1.0, 0.75, 0.5, 0.25, 0.0]).ok


def test_a_scheduler_that_lands_nowhere_is_unknown_mismatch() -> None:
    import diffusers

    report = check_scheduler(diffusers.DDIMScheduler(), expect={"model_output": "epsilon"})  # clips x0 to [-1, 1]
    assert report.codes == ("unknown_mismatch",), str(report)


@pytest.mark.parametrize("bad, match", [({"direction": "down"}, "decreasing"), ({"shift": -1}, "positive"),
                                        ({"model_output": "velocityy"}, "must be one of"), ({"order": 2}, "unknown key"),
                                        ({"solver_order": 1.5}, "whole number")])
def test_bad_expectations_are_explained(bad: dict, match: str) -> None:
    with pytest.raises(FlowlabError, match=match):
        check_scheduler(_sched("euler-flow"), expect=bad)


def test_drive_reports_each_hypothesis_distance() -> None:
    from flowlab.inspector import inspect

    card = inspect(_sched("unipc-flow"), 10)
    assert card.driven and card.candidates[0][0].endswith(": E - D")
    assert card.candidates[1][1] >= 4 * card.candidates[0][1]
