"""`flowlab inspect` (issue 22): never imports or builds what the user did not name, and says what went wrong.

Each case runs the real CLI in a fresh interpreter in a scratch folder (faultkit.run_cli); marker files show
whether any code ran."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from faultkit import ROOT, run_cli

needs_diffusers = pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="needs diffusers")
EULER = "diffusers.FlowMatchEulerDiscreteScheduler"
EVIL = ("open('MARK_IMPORTED', 'w').write('x')\n"
        "class S:\n"
        "    def __init__(self):\n"
        "        open('MARK_BUILT', 'w').write('x')\n"
        "    def set_timesteps(self, num_inference_steps=None):\n"
        "        self.timesteps = [1.0]\n"
        "    def step(self, model_output, timestep, sample):\n"
        "        return sample\n")


def _error(r, *expect: str, rc: int = 1) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == rc, f"exit {r.returncode}: {r.stderr}"
    assert r.stderr.startswith("flowlab inspect: error: "), r.stderr
    for text in expect:
        assert text in r.stderr, f"{text!r} not in {r.stderr!r}"


def test_a_module_in_the_working_folder_is_never_imported(tmp_path: Path) -> None:
    (tmp_path / "evilmod.py").write_text(EVIL)
    r = run_cli("inspect", "evilmod.S", cwd=tmp_path)
    _error(r, "imports scheduler classes only from diffusers", "--allow-import evilmod")
    assert not list(tmp_path.glob("MARK_*"))


@needs_diffusers
def test_a_working_folder_file_named_like_a_known_package_is_not_imported(tmp_path: Path) -> None:
    (tmp_path / "diffusers.py").write_text("open('MARK_IMPORTED', 'w').write('x')\n")
    r = run_cli("inspect", EULER, "--steps", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "convention: conventional" in r.stdout
    assert not list(tmp_path.glob("MARK_*"))


def test_the_opt_in_imports_the_named_module_only(tmp_path: Path) -> None:
    (tmp_path / "evilmod.py").write_text(EVIL)
    r = run_cli("inspect", "evilmod.S", "--allow-import", "evilmod", cwd=tmp_path)
    assert (tmp_path / "MARK_IMPORTED").exists() and (tmp_path / "MARK_BUILT").exists()  # the user asked for it
    assert "Traceback" not in r.stderr


def test_a_file_path_is_an_explicit_opt_in(tmp_path: Path) -> None:
    (tmp_path / "evilmod.py").write_text(EVIL.replace("class S", "def S():\n    pass\nclass T"))
    r = run_cli("inspect", "evilmod.py:S", cwd=tmp_path)
    _error(r, "evilmod.py:S is a function, not a scheduler class")
    assert not (tmp_path / "MARK_BUILT").exists()


def test_a_class_outside_the_allow_list_is_never_built(tmp_path: Path) -> None:
    # imaplib.IMAP4() opens a TCP connection to localhost:143
    r = run_cli("inspect", "imaplib.IMAP4", cwd=tmp_path)
    _error(r, "'imaplib.IMAP4': flowlab inspect imports scheduler classes only from")


def test_resolve_refuses_before_importing() -> None:
    from flowlab import FlowlabError
    from flowlab.scheduler_import import resolve_scheduler

    sys.modules.pop("imaplib", None)
    with pytest.raises(FlowlabError, match="--allow-import imaplib"):
        resolve_scheduler("imaplib.IMAP4")
    assert "imaplib" not in sys.modules


@pytest.mark.parametrize("name, expect", [
    ("flowlab.gmm.GaussianMixture", "is not a scheduler class: it has no method set_timesteps()"),
    ("flowlab.cli.main", "flowlab.cli.main is a function, not a scheduler class"),
    ("flowlab.errors", "flowlab.errors is a module, not a scheduler class"),
])
def test_allowed_packages_still_build_only_scheduler_classes(name: str, expect: str, tmp_path: Path) -> None:
    _error(run_cli("inspect", name, cwd=tmp_path), expect)


@pytest.mark.parametrize("name", [".", ".os.X", "a..b", "diffusers.", "os.path.1x"])
def test_names_that_are_not_dotted_class_names(name: str, tmp_path: Path) -> None:
    _error(run_cli("inspect", name, cwd=tmp_path), f"{name!r} is not a dotted class name")


@needs_diffusers
@pytest.mark.parametrize("argv, expect", [
    (["--mu", "1000"], ["--mu 1000 is outside -9.21 .. 9.21", "too large for a float"]),
    (["--mu", "300"], ["--mu 300 is outside -9.21 .. 9.21"]),
    (["--mu", "-300"], ["--mu -300 is outside"]),
    (["--shift", "1e-308"], ["--shift 1e-308 is outside 0.0001 .. 10000"]),
    (["--shift", "1e+308"], ["--shift 1e+308 is outside 0.0001 .. 10000"]),
    (["--sigmas", "1,1,0.5"], ["calls the model at the same timestep more than once", "give distinct sigmas"]),
    (["--sigmas", "0.5,0.5,0"], ["same timestep more than once"]),
    (["--config", "num_train_timesteps=100000000"], ["integers above 100,000 are refused"]),
    (["--config", "shift"], ["--config takes key=value"]),
    (["--config", "shfit=3"], ["takes no option 'shfit'", "Did you mean: shift"]),
    (["--config", "shift=nan"], ["config shift=nan is not a finite number"]),
])
def test_extreme_and_degenerate_schedules_are_explained(argv: list[str], expect: list[str], tmp_path: Path) -> None:
    _error(run_cli("inspect", EULER, *argv, cwd=tmp_path), *expect)


@needs_diffusers
def test_config_values_are_never_evaluated(tmp_path: Path) -> None:
    payload = "prediction_type=__import__('os').system('touch MARK_EVAL')"
    r = run_cli("inspect", "diffusers.DDIMScheduler", "--config", payload, "--steps", "2", cwd=tmp_path)
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "MARK_EVAL").exists()


def test_a_missing_package_says_how_to_install_it(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['diffusers'] = None; from flowlab.cli import main; "
            f"sys.exit(main(['inspect', '{EULER}']))")
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    _error(r, "needs the Python package 'diffusers', which is not installed", "pip install 'flowlab[atlas]'")
    assert "Did you mean" not in r.stderr


@needs_diffusers
def test_a_warning_repeated_by_the_library_is_shown_once(tmp_path: Path) -> None:
    r = run_cli("inspect", "diffusers.EulerDiscreteScheduler", "--steps", "12", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("scale_model_input") == 1, r.stderr
