"""The inspector: recover a scheduler's convention from its step alone, and refuse when it cannot."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from flowlab import FlowlabError
from flowlab.cli import main
from flowlab.inspector import inspect, inspect_step, resolve_scheduler, schedule_step
from flowlab.schedules import hunyuan_compat, shifted, uniform
from flowlab.conventions import CONVENTIONAL

FIXTURE = json.loads((Path(__file__).parent / "data" / "schedulers" / "hunyuan3d2.json").read_text())


# ---- bare step functions (no third-party library) ------------------------------------------------

def test_hunyuan_compat_schedule_names_the_wasted_last_step():
    step, ts = schedule_step(hunyuan_compat(10))
    r = inspect_step(step, ts)
    assert r.affine and r.euler
    assert r.direction == "increasing" and r.convention == "reversed"
    assert r.noop_steps == (9,) and r.effective_steps == 9
    assert any("wasted" in f and "step 9" in f for f in r.findings)
    assert r.model_output == "D - E"
    assert r.data_prediction == "x + (1 - t)*v" and r.noise_prediction == "x - t*v"
    assert r.times[-1] == r.times[-2] == 1.0


def test_corrected_schedule_has_no_wasted_step():
    step, ts = schedule_step(uniform(9, "reversed"))
    r = inspect_step(step, ts)
    assert r.noop_steps == () and r.effective_steps == 9
    assert not any("wasted" in f for f in r.findings)
    assert abs(r.shift - 1) < 1e-6


@pytest.mark.parametrize("shift", [0.5, 3.0])
def test_shift_is_recovered_from_a_flowlab_schedule(shift):
    step, ts = schedule_step(shifted(12, CONVENTIONAL, shift, dtype=torch.float64))
    r = inspect_step(step, ts, dtype=torch.float64)
    assert r.convention == "conventional" and r.direction == "decreasing"
    assert abs(r.shift - shift) < 1e-4
    assert r.data_prediction == "x - sigma*v"


def test_recovered_coefficients_are_the_schedule_steps():
    sched = shifted(6, CONVENTIONAL, 2.0, dtype=torch.float64)
    step, ts = schedule_step(sched)
    r = inspect_step(step, ts, dtype=torch.float64)
    dts = (sched[1:] - sched[:-1]).tolist()
    for c, dt in zip(r.steps, dts):
        assert abs(c.a - 1) < 1e-12 and abs(c.c) < 1e-12 and abs(c.b - dt) < 1e-12


def test_padding_with_the_wrong_endpoint_is_reported():
    # a port that appended 0.0 instead of 1.0: the last step jumps back by -1
    sched = torch.cat([torch.linspace(0, 1, 5), torch.zeros(1)])
    step, ts = schedule_step(sched)
    r = inspect_step(step, ts, times=sched.tolist())
    assert any("against the direction of time" in f for f in r.findings)


def test_non_affine_step_is_refused():
    r = inspect_step(lambda v, t, x: x + 0.1 * v * v, [1.0, 0.5])
    assert not r.affine and r.convention is None
    assert any("not affine" in f for f in r.findings)
    assert "NO" in r.card()


def test_random_step_is_refused():
    gen = torch.Generator().manual_seed(0)
    r = inspect_step(lambda v, t, x: x - 0.5 * v + torch.randn(x.shape, generator=gen), [1.0, 0.5])
    assert not r.affine


@pytest.mark.parametrize("bad", [42, "diffusers", None, torch.zeros(3)])
def test_not_a_scheduler_names_what_was_expected(bad):
    with pytest.raises(FlowlabError, match="expected a diffusers-style scheduler"):
        inspect(bad)


def test_a_class_instead_of_an_instance_is_explained():
    class Sched:
        def set_timesteps(self, n):
            pass

        def step(self, v, t, x):
            return x

    with pytest.raises(FlowlabError, match="instantiate it first"):
        inspect(Sched)


def test_step_function_without_timesteps_is_explained():
    with pytest.raises(FlowlabError, match="timesteps"):
        inspect(lambda v, t, x: x)


def test_step_returning_garbage_is_explained():
    with pytest.raises(FlowlabError, match="expected the next sample"):
        inspect_step(lambda v, t, x: "nope", [1.0])


def test_unknown_dotted_names_get_suggestions():
    with pytest.raises(FlowlabError, match="Did you mean"):
        resolve_scheduler("difusers.FlowMatchEulerDiscreteScheduler")
    with pytest.raises(FlowlabError, match="expected a dotted class name"):
        resolve_scheduler("FlowMatchEuler")


# ---- the real Hunyuan3D-2 scheduler, through the fixture -------------------------------------------

@pytest.mark.parametrize("n", ["5", "10"])
def test_real_hunyuan_scheduler_gives_the_same_card_as_hunyuan_compat(n):
    real = FIXTURE["inspection"][n]
    step, ts = schedule_step(hunyuan_compat(int(n)))
    ours = inspect_step(step, ts).as_dict()
    assert real["affine"] and real["euler"]
    assert real["noop_steps"] == ours["noop_steps"] == [int(n) - 1]
    for key in ("convention", "direction", "effective_steps", "model_output", "data_prediction", "noise_prediction"):
        assert real[key] == ours[key], key
    assert max(abs(a - b) for a, b in zip(real["times"], ours["times"])) < 1e-6
    for rs, os_ in zip(real["steps"], ours["steps"]):
        assert abs(rs["b"] - os_["b"]) < 1e-6 and abs(rs["a"] - 1) < 1e-6
    assert real["model_time_scale"] == pytest.approx(1000.0)  # the pipeline feeds timesteps / 1000
    assert any("wasted" in f for f in real["findings"])


# ---- diffusers ------------------------------------------------------------------------------------

diffusers_only = pytest.mark.skipif(
    __import__("importlib").util.find_spec("diffusers") is None, reason="needs diffusers==0.42.1")


@diffusers_only
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_diffusers_flow_match_euler(shift):
    import diffusers

    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    r = inspect(sched, 10)
    ref = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    ref.set_timesteps(10)
    assert max(abs(a - b) for a, b in zip(r.times, ref.sigmas.tolist())) < 1e-6
    assert r.convention == "conventional" and r.direction == "decreasing"
    assert r.model_output == "E - D" and r.data_prediction == "x - sigma*v"
    assert r.noise_prediction == "x + (1 - sigma)*v"
    assert r.model_time_scale == pytest.approx(1000.0, rel=1e-5)
    assert r.noop_steps == ()
    assert abs(r.shift - shift) < 1e-3
    doubled = any("#13243" in f for f in r.findings)
    assert doubled == (shift != 1.0)


@diffusers_only
def test_diffusers_dynamic_shifting_reads_as_exp_mu():
    import diffusers

    r = inspect(diffusers.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True), 10, mu=0.8)
    assert abs(r.shift - math.exp(0.8)) < 1e-3


@diffusers_only
def test_diffusers_inverted_sigmas_read_as_reversed():
    import diffusers

    r = inspect(diffusers.FlowMatchEulerDiscreteScheduler(invert_sigmas=True), 10)
    assert r.convention == "reversed" and r.data_prediction == "x + (1 - t)*v"


@diffusers_only
def test_diffusers_heun_is_driven_with_the_exact_model():
    import diffusers

    r = inspect(diffusers.FlowMatchHeunDiscreteScheduler(), 5)
    assert not r.affine and r.driven and r.derived
    assert r.solver_order == 2 and r.n_calls == 9  # 5 steps, the last one first-order: 2 * 5 - 1 calls
    assert r.convention == "conventional" and r.model_output == "E - D" and r.direction == "decreasing"
    assert any("earlier model outputs" in f and "order 2" in f for f in r.findings)


@diffusers_only
def test_diffusers_stochastic_sampling_is_refused():
    import diffusers

    r = inspect(diffusers.FlowMatchEulerDiscreteScheduler(stochastic_sampling=True), 5)
    assert not r.affine and any("not deterministic" in f for f in r.findings)


@diffusers_only
def test_ddim_clipping_is_not_affine_and_unclipped_ddim_rescales():
    import diffusers

    assert not inspect(diffusers.DDIMScheduler(), 5).affine  # clip_sample=True by default
    r = inspect(diffusers.DDIMScheduler(clip_sample=False), 5)
    assert r.affine and not r.euler and any("rescales" in f for f in r.findings)


@diffusers_only
def test_cli_inspect_shift3(capsys):
    assert main(["inspect", "diffusers.FlowMatchEulerDiscreteScheduler", "--shift", "3"]) == 0
    out = capsys.readouterr().out
    assert "convention: conventional" in out and "shift: 3.0000" in out and "#13243" in out
    assert main(["inspect", "diffusers.FlowMatchEulerDiscreteScheduler", "--shift", "3", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["convention"] == "conventional" and abs(card["shift"] - 3) < 1e-3


@diffusers_only
def test_cli_errors(capsys):
    assert main(["inspect", "diffusers.FlowMatchEulerDiscretScheduler"]) == 1
    assert "Did you mean: diffusers.FlowMatchEulerDiscreteScheduler" in capsys.readouterr().err
    assert main(["inspect", "diffusers.DDIMScheduler"]) == 1  # clip_sample=True: clips, lands on nothing
    assert "NO" in capsys.readouterr().out
    assert main(["inspect", "diffusers.DDIMScheduler", "--shift", "2"]) == 1
    assert "drop --shift" in capsys.readouterr().err


def test_cli_hunyuan_alias(capsys):
    assert main(["inspect", "hunyuan3d2", "--steps", "6"]) == 0
    out = capsys.readouterr().out
    assert "convention: reversed" in out and "step 5 is a no-op" in out and "wasted" in out
    assert main(["inspect", "hunyuan3d2", "--shift", "2"]) == 1
    with pytest.raises(SystemExit) as exc:
        main(["inspect", "hunyuan3d2", "--steps", "x"])
    assert exc.value.code == 2
