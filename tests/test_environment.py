"""environment.yml (conda-forge names) must mirror pyproject.toml and requirements-nodeps.txt: same packages,
same versions; every package flowlab or a notebook imports is listed; the kernel registration is documented."""
from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
# PyPI name -> conda-forge name, where they differ.
PYPI_TO_CONDA = {"torch": "pytorch", "build": "python-build"}
#: In environment.yml only: the interpreter, pip, and torchvision (torchcfm / k-diffusion declare it; conda's
#: build matches conda's pytorch, so pip does not fetch a PyPI torch for them).
ENV_ONLY = {"python", "pip", "torchvision"}
#: Imported somewhere but never a dependency: hy3dgen (the reference, non-commercial licence; optional in
#: `flowlab inspect`), triton (ships with CUDA builds of torch; flowlab.fast's GPU kernels).
NOT_DEPENDENCIES = {"hy3dgen", "triton"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", req)
    assert m, f"cannot parse requirement {req!r}"
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    reqs = list(project["dependencies"])
    for name, extra in project.get("optional-dependencies", {}).items():
        reqs += [r for r in extra if not r.startswith(project["name"] + "[")]
    reqs += nodeps_requirements()
    out: dict[str, str] = {}
    for r in reqs:
        name, spec = _split(r)
        out[PYPI_TO_CONDA.get(name, name)] = spec
    return out


def nodeps_requirements() -> list[str]:
    """requirements-nodeps.txt: torchcfm and k-diffusion (a venv installs them with --no-deps)."""
    lines = (ROOT / "requirements-nodeps.txt").read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep.get("pip", []):
                if pip_dep.startswith("-e"):
                    continue
                name, spec = _split(pip_dep)
                out[PYPI_TO_CONDA.get(name, name)] = spec
            continue
        name, spec = _split(dep)
        if name not in ENV_ONLY:
            out[name] = spec
    return out


def test_environment_yml_mirrors_pyproject() -> None:
    py, env = pyproject_requirements(), environment_requirements()
    missing = sorted(set(py) - set(env))
    extra = sorted(set(env) - set(py))
    differ = sorted(f"{k}: pyproject {py[k]!r} vs environment.yml {env[k]!r}" for k in set(py) & set(env) if py[k] != env[k])
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    assert not differ, "version specs differ: " + "; ".join(differ)


def test_python_versions_agree() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and _split(d)[0] == "python"]
    assert pythons == ["python" + data["project"]["requires-python"]]


def test_the_check_catches_a_difference(tmp_path: Path) -> None:
    """The comparison is not vacuous: a changed spec is reported."""
    py = pyproject_requirements()
    assert "pytorch" in py and "sympy" in py and "nbval" in py
    changed = dict(py, sympy=">=0.1")
    assert changed != environment_requirements()


def test_nodeps_packages_are_pip_entries_with_the_same_pins() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    for req in nodeps_requirements():
        assert req in pip, f"{req} (requirements-nodeps.txt) is not under pip: in environment.yml"
    assert {_split(r)[0] for r in nodeps_requirements()} == {"torchcfm", "k-diffusion"}


def test_kernel_registration_is_documented() -> None:
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^#.*python -m ipykernel install .*--name python3", text, re.M), \
        "environment.yml must say how to register the kernel the notebooks name (python3)"
    names = {json.loads(p.read_text())["metadata"].get("kernelspec", {}).get("name")
             for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
    assert names <= {"python3", None}, names


def _imports(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def imported_top_level_modules() -> dict[str, set[str]]:
    """Top-level modules imported by flowlab's code and by the notebooks' code cells -> where."""
    where: dict[str, set[str]] = {}
    sources = [(p, p.read_text()) for p in (ROOT / "flowlab").rglob("*.py")]
    for p in (ROOT / "notebooks").rglob("*.ipynb"):
        if ".ipynb_checkpoints" in p.parts:
            continue
        for cell in json.loads(p.read_text())["cells"]:
            if cell["cell_type"] == "code":
                src = "".join(cell["source"])
                sources.append((p, "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!")))))
    for p, src in sources:
        for mod in _imports(src):
            where.setdefault(mod, set()).add(p.relative_to(ROOT).as_posix())
    return where


def undeclared(imported: dict[str, set[str]], declared: set[str]) -> dict[str, set[str]]:
    """Imported third-party modules whose distribution is not declared."""
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    out = {}
    for mod, places in imported.items():
        if mod in sys.stdlib_module_names or mod == "flowlab" or mod in NOT_DEPENDENCIES:
            continue
        names = {d.lower().replace("_", "-") for d in dists.get(mod, [mod])}
        if not names & declared:
            out[mod] = places
    return out


def test_everything_flowlab_and_the_notebooks_import_is_declared() -> None:
    declared = {k.lower().replace("_", "-") for k in pyproject_requirements()} | {"torch"}
    env = {k.lower().replace("_", "-") for k in environment_requirements()} | {"torch"}
    imported = imported_top_level_modules()
    assert "sympy" in imported and "matplotlib" in imported  # the scan sees something
    assert not undeclared(imported, declared), f"imported but not in pyproject.toml: {undeclared(imported, declared)}"
    assert not undeclared(imported, env), f"imported but not in environment.yml: {undeclared(imported, env)}"


def test_the_import_check_catches_an_undeclared_package() -> None:
    declared = {k.lower().replace("_", "-") for k in pyproject_requirements()} | {"torch"}
    assert undeclared({"yaml": {"x.py"}}, declared) == {}
    assert undeclared({"yaml": {"x.py"}}, declared - {"pyyaml"}) == {"yaml": {"x.py"}}
    assert undeclared({"IPython": {"nb.ipynb"}}, declared - {"ipython"}) == {"IPython": {"nb.ipynb"}}
