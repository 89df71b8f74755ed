"""A missing optional dependency says which flowlab extra (or package) to install, exit status 1, no traceback.

Modules are hidden in a subprocess with ``sys.modules[name] = None`` (the import then fails as if the
package were not installed), for the commands and for the library calls the notebooks make.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from flowlab._optional import NO_DEPS_PINS, OPTIONAL, MissingDependency, install_hint, missing_message, require
from flowlab.errors import FlowlabError

ROOT = Path(__file__).resolve().parent.parent


def _hidden(modules: list[str], code: str, cwd: Path) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    env_code = prelude + code
    return subprocess.run([sys.executable, "-c", env_code], cwd=cwd, capture_output=True, text=True, timeout=300)


def _cli(modules: list[str], argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return _hidden(modules, f"from flowlab.cli import main\nsys.exit(main({argv!r}))", cwd)


# ---- the table agrees with pyproject.toml and requirements-nodeps.txt ---------------------------------------

def _extras() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {name: {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in reqs}
            for name, reqs in project["optional-dependencies"].items()}


@pytest.mark.parametrize("module", sorted(OPTIONAL))
def test_each_optional_module_is_in_the_extra_it_names(module: str) -> None:
    pip, extra = OPTIONAL[module]
    if extra is None:
        assert pip in NO_DEPS_PINS
        return
    assert pip.lower() in _extras()[extra], f"{pip} is not in flowlab[{extra}] (pyproject.toml)"


def test_no_deps_pins_match_requirements_nodeps() -> None:
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements-nodeps.txt").read_text().splitlines()]
    pins = dict(ln.split("==") for ln in lines if ln)
    assert pins == NO_DEPS_PINS


def test_every_runtime_optional_requirement_has_an_import_name() -> None:
    """Each package of the shape and atlas extras is in the table (else its absence gives a raw error)."""
    covered = {pip.lower() for pip, _ in OPTIONAL.values()}
    for extra in ("shape", "atlas"):
        assert _extras()[extra] <= covered, f"flowlab[{extra}] has packages missing from flowlab._optional.OPTIONAL"


# ---- the messages ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("module, words", [
    ("yaml", ["'pyyaml'", "flowlab[shape]"]),
    ("skimage.measure", ["'scikit-image'", "flowlab[shape]"]),
    ("transformers", ["'transformers'", "flowlab[shape]"]),
    ("diffusers", ["'diffusers'", "flowlab[atlas]"]),
    ("torchcfm", ["--no-deps torchcfm==1.0.7"]),
    ("ipywidgets", ["flowlab[notebooks]"]),
])
def test_message_names_the_package_and_the_extra(module: str, words: list[str]) -> None:
    text = missing_message(module, "testing")
    assert text.startswith("testing needs")
    for w in words:
        assert w in text
    # the wrong extra must not be offered
    others = [e for e in ("shape", "atlas", "notebooks", "test") if f"flowlab[{e}]" not in " ".join(words)]
    assert not any(f"flowlab[{e}]" in text for e in others), text


def test_require_returns_the_module_and_raises_a_flowlab_error(tmp_path: Path) -> None:
    import json

    assert require("json") is json
    with pytest.raises(MissingDependency) as info:
        require("flowlab_no_such_module_xyz")
    assert isinstance(info.value, FlowlabError) and isinstance(info.value, ModuleNotFoundError)
    assert info.value.name == "flowlab_no_such_module_xyz"
    assert install_hint("flowlab_no_such_module_xyz") == "install it: pip install flowlab_no_such_module_xyz"


# ---- commands and notebooks with a module hidden -----------------------------------------------------------

@pytest.mark.parametrize("hidden, argv, extra", [
    (["yaml"], ["shape", "--model", "mini", "--primitive", "box", "--out", "m.obj", "--quiet", "--steps", "2",
                "--octree", "16"], "shape"),
    (["PIL"], ["shape", "--model", "mini", "--primitive", "box", "--out", "m.obj", "--quiet", "--steps", "2",
               "--octree", "16"], "shape"),
    (["trimesh"], ["shape", "--model", "mini", "--primitive", "box", "--out", "m.obj", "--quiet", "--steps", "2",
                   "--octree", "16"], "shape"),
    (["diffusers"], ["inspect", "diffusers.FlowMatchEulerDiscreteScheduler"], "atlas"),
])
def test_command_with_a_hidden_module_says_what_to_install(tmp_path: Path, hidden: list[str], argv: list[str],
                                                           extra: str) -> None:
    proc = _cli(hidden, argv, tmp_path)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"pip install 'flowlab[{extra}]'" in proc.stderr, proc.stderr
    assert "did you mean" not in proc.stderr.lower()


def test_a_raw_import_elsewhere_is_mapped_by_the_cli(tmp_path: Path) -> None:
    """A command whose own code does ``import yaml`` (not through require) still gets the extra's advice."""
    code = ("import flowlab.commands.derive as d\n"
            "def run(args):\n    import yaml\n"
            "d.run = run\nfrom flowlab.cli import main\nsys.exit(main(['derive']))")
    proc = _hidden(["yaml"], code, tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "pip install 'flowlab[shape]'" in proc.stderr


def test_an_unknown_missing_module_is_still_a_bug_report(tmp_path: Path) -> None:
    """Only optional dependencies are mapped: a missing module that flowlab does not list keeps its traceback."""
    code = ("import flowlab.commands.derive as d\n"
            "def run(args):\n    import flowlab_internal_typo\n"
            "d.run = run\nfrom flowlab.cli import main\nsys.exit(main(['derive']))")
    proc = _hidden([], code, tmp_path)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "flowlab_internal_typo" in proc.stderr


@pytest.mark.parametrize("hidden, call, extra", [
    # what notebook 04 and 05 call: the parity fixtures, the mini model, a card's reference library
    (["yaml"], "from flowlab.shape.load.mini import load_mini; load_mini()", "shape"),
    (["scipy"], "from flowlab.shape.verify.parity import parity_report; parity_report()", "shape"),
    (["diffusers"], "from flowlab import atlas; atlas.require('diffusers')", "atlas"),
    (["flow_matching"], "from flowlab import atlas; atlas.verify('flow-matching')", "atlas"),
])
def test_notebook_calls_with_a_hidden_module(tmp_path: Path, hidden: list[str], call: str, extra: str) -> None:
    code = (f"from flowlab.errors import FlowlabError\ntry:\n    {call}\n"
            "except FlowlabError as e:\n    print(type(e).__name__, e)\nelse:\n    print('NO ERROR')")
    proc = _hidden(hidden, code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("MissingDependency"), proc.stdout + proc.stderr[-1000:]
    assert f"flowlab[{extra}]" in proc.stdout
