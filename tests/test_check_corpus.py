"""flowlab.testing.check_sampler is sharp: every RIGHT loop of the corpus passes, every WRONG loop is diagnosed
with its own finding code (0 false PASS, 0 false FAIL), every code in at least three coding styles, and the real
libraries (diffusers, flow_matching, k-diffusion, torchdiffeq as torchcfm uses it) pass when run by their own code.
The corpus itself is tests/check_corpus.py.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_corpus as corpus  # noqa: E402

from flowlab.resources import data_dir  # noqa: E402
from flowlab.testing import FINDING_CODES  # noqa: E402
from flowlab.testing.sampler import check_sampler  # noqa: E402

NEEDS = {"diffusers": "diffusers", "kdiff": "torchsde", "flow_matching": "flow_matching", "torchdiffeq": "torchdiffeq"}
FIXTURE = data_dir("schedulers") / "hunyuan3d2.json"
_REPORTS: dict[str, object] = {}


def _missing(case: corpus.Case) -> str | None:
    if case.cuda and not torch.cuda.is_available():
        return "needs a CUDA GPU"
    mod = NEEDS.get(case.style) or next((m for s, m in NEEDS.items() if s in case.name.lower()), None)
    if mod and importlib.util.find_spec(mod) is None:
        return f"needs {mod}"
    return None


def _report(case: corpus.Case):
    if case.name not in _REPORTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # libraries' deprecation chatter while being driven
            _REPORTS[case.name] = check_sampler(case.fn, name=case.name, **case.kwargs)
    return _REPORTS[case.name]


def _expected(case: corpus.Case) -> set[str]:
    return set() if case.expect is None else {case.expect} | set(case.also)


@pytest.mark.parametrize("case", corpus.RIGHT, ids=[c.name for c in corpus.RIGHT])
def test_right_loop_passes(case):
    if _missing(case):
        pytest.skip(_missing(case))
    report = _report(case)
    assert report.ok, str(report)
    assert report.facts["error"] <= report.facts["tolerance"]


@pytest.mark.parametrize("case", corpus.WRONG, ids=[c.name for c in corpus.WRONG])
def test_wrong_loop_gets_its_code(case):
    if _missing(case):
        pytest.skip(_missing(case))
    report = _report(case)
    assert set(report.codes) == _expected(case), str(report)
    assert report.findings[0].message and str(report).startswith(case.name)


def test_corpus_size_and_coverage():
    """>= 40 wrong loops, >= 20 right ones; every finding code of the sampler check in >= 3 coding styles."""
    assert len(corpus.WRONG) >= 40 and len(corpus.RIGHT) >= 20
    styles = defaultdict(set)
    for case in corpus.WRONG:
        styles[case.expect].add(case.style)
    sampler_codes = {"wrong_direction", "noise_as_data", "wasted_last_step", "double_shift", "time_scale",
                     "t_vs_sigma", "fp16_time", "not_at_data", "sign_flip", "unknown_mismatch"}
    assert sampler_codes <= set(FINDING_CODES)
    assert set(styles) == sampler_codes
    thin = {code: sorted(s) for code, s in styles.items() if len(s - {"cuda"}) < 3}
    assert not thin, thin
    right_styles = {c.style for c in corpus.RIGHT}
    assert {"plain", "diffusers", "kdiff", "flow_matching", "torchdiffeq", "float64"} <= right_styles


def test_false_pass_and_false_fail_are_zero(capsys):
    runnable = [c for c in corpus.RIGHT + corpus.WRONG if not _missing(c)]
    false_pass = [c.name for c in runnable if c.expect is not None and _report(c).ok]
    false_fail = [c.name for c in runnable if c.expect is None and not _report(c).ok]
    misdiagnosed = [c.name for c in runnable if c.expect is not None and set(_report(c).codes) != _expected(c)]
    with capsys.disabled():
        print(f"\ncheck_sampler corpus: {len(runnable)} loops run, false PASS {len(false_pass)}, "
              f"false FAIL {len(false_fail)}, wrong code {len(misdiagnosed)}")
    assert (false_pass, false_fail, misdiagnosed) == ([], [], [])


# ---- hy3dgen 2.0.2: the reproduction against the fixture generated from the real package --------------------

@pytest.mark.parametrize("case", json.loads(FIXTURE.read_text())["cases"], ids=lambda c: f"N={c['num_inference_steps']}")
def test_hy3dgen_reproduction_matches_the_real_scheduler(case):
    n = case["num_inference_steps"]
    sched = corpus.HunyuanFlowMatchEuler()
    sched.set_timesteps(sigmas=np.linspace(0, 1, n))
    assert sched.timesteps.tolist() == pytest.approx(case["timesteps"], abs=1e-4)
    assert sched.sigmas.tolist() == pytest.approx(case["sigmas"], abs=1e-7)
    x = torch.tensor(case["x_init"], dtype=torch.float32)
    for t, v, want in zip(sched.timesteps, case["model_outputs"], case["states"]):
        x = sched.step(torch.tensor(v, dtype=torch.float32), t, x)
        assert torch.allclose(x, torch.tensor(want), atol=1e-6, rtol=0)


def test_hy3dgen_loop_wastes_its_last_call():
    report = _report(next(c for c in corpus.WRONG if c.name.startswith("hy3dgen 2.0.2")))
    assert report.codes == ("wasted_last_step",)
    ev = report.findings[0].evidence
    assert (ev["calls"], ev["effective_steps"]) == (50, 49)
    assert ev["wasted_at_t"] == [1.0]


def test_issue124_guidance_code_is_noise_as_data():
    report = _report(next(c for c in corpus.WRONG if c.name == "Hunyuan3D-2 #124 guidance code"))
    assert report.codes == ("noise_as_data",)
    assert "x - t v" in report.findings[0].message


# ---- check_prediction ----------------------------------------------------------------------------------------

from flowlab.testing import check_prediction  # noqa: E402


@pytest.mark.parametrize("case", corpus.PRED_RIGHT, ids=[c.name for c in corpus.PRED_RIGHT])
def test_right_prediction_passes(case):
    report = check_prediction(case.fn, case.convention, case.kind, name=case.name, **case.kwargs)
    assert report.ok, str(report)


@pytest.mark.parametrize("case", corpus.PRED_WRONG, ids=[c.name for c in corpus.PRED_WRONG])
def test_wrong_prediction_gets_its_code(case):
    report = check_prediction(case.fn, case.convention, case.kind, name=case.name, **case.kwargs)
    assert report.codes[:1] == (case.expect,), str(report)


def test_prediction_corpus_covers_each_code_in_three_styles():
    styles = defaultdict(set)
    for case in corpus.PRED_WRONG:
        styles[case.expect].add(case.style)
    assert set(styles) == {"noise_as_data", "sign_flip", "t_vs_sigma", "time_scale", "fp16_time", "mutates_input",
                           "bad_output", "unknown_mismatch"}
    assert all(len(s) >= 3 for s in styles.values()), dict(styles)


def _one_per_code() -> list[corpus.Case]:
    picked: dict[str | None, list[corpus.Case]] = {}
    for case in corpus.RIGHT + corpus.WRONG:
        if not case.cuda and "dim" not in case.kwargs and len(picked.setdefault(case.expect, [])) < 2:
            picked[case.expect].append(case)
    return [c for cases in picked.values() for c in cases]


@pytest.mark.parametrize("case", _one_per_code(), ids=lambda c: c.name)
def test_diagnosis_does_not_depend_on_dim_steps_or_seed(case):
    """The same loops in 3-D, at 20 steps, from other noise: the same verdict (the checks are not tuned to one
    input)."""
    if _missing(case):
        pytest.skip(_missing(case))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = check_sampler(case.fn, name=case.name, **{**case.kwargs, "dim": 3, "steps": 20, "seed": 7})
    assert set(report.codes) == _expected(case), str(report)
