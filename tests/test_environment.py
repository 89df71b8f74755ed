"""environment.yml (conda-forge names) must mirror pyproject.toml: same packages, same versions."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
# PyPI name -> conda-forge name, where they differ.
PYPI_TO_CONDA = {"torch": "pytorch"}
ENV_ONLY = {"python", "pip"}


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
    out: dict[str, str] = {}
    for r in reqs:
        name, spec = _split(r)
        out[PYPI_TO_CONDA.get(name, name)] = spec
    return out


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
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pythons == ["python" + data["project"]["requires-python"]]


def test_the_check_catches_a_difference(tmp_path: Path) -> None:
    """The comparison is not vacuous: a changed spec is reported."""
    py = pyproject_requirements()
    assert "pytorch" in py and "sympy" in py and "nbval" in py
    changed = dict(py, sympy=">=0.1")
    assert changed != environment_requirements()
