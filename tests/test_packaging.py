"""pip install is enough: the wheel carries the tutorial and every file package code reads.

Fast checks (always run): package code never reads tests/ nor names a developer's machine, the build
hook and flowlab.resources agree on what the tutorial is, ``copy_tutorial`` / ``flowlab notebooks``
refuse what they must. The ``wheel`` tests build the wheel and the sdist, install the wheel into a
fresh virtual environment and use it from a folder outside the checkout.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from flowlab.errors import FlowlabError
from flowlab.resources import TUTORIAL_PATTERNS, copy_tutorial, data_dir, notebooks_dir, tutorial_files

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "flowlab"

# ---- package code never reads tests/ ----------------------------------------------------------------------

#: Ways code can point at the test tree: a path component "tests" joined with /, a "tests/..." path literal
#: that is not a test module's name (docstrings may cite tests/test_*.py), a parents[...] walk to a "tests" folder.
_TESTS_PATTERNS = (
    re.compile(r"""["']tests["']\s*/|/\s*["']tests["']"""),
    re.compile(r"""["'][^"'\n]*\btests/(?!test_)[^"'\n]*["']"""),
    re.compile(r"""joinpath\([^)]*["']tests["']"""),
    re.compile(r"""os\.path\.join\([^)]*["']tests["']"""),
)
#: Paths of one machine (a developer's venvs, the CI workspace): never in package code or its messages.
_MACHINE_PATTERNS = (re.compile(r"/work/"), re.compile(r"venvs/"), re.compile(r"/root/"), re.compile(r"/home/\w"))


def reads_tests(source: str) -> list[str]:
    """Lines of ``source`` that point at the tests/ folder."""
    return [line.strip() for line in source.splitlines() if any(p.search(line) for p in _TESTS_PATTERNS)]


def machine_paths(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if any(p.search(line) for p in _MACHINE_PATTERNS)]


def package_sources() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "tutorial" not in p.relative_to(PKG).parts)


def test_package_code_never_reads_tests() -> None:
    found = {str(p.relative_to(ROOT)): hits for p in package_sources() if (hits := reads_tests(p.read_text()))}
    assert not found, f"package code reads tests/ (move the file to flowlab/data, use flowlab.resources): {found}"


def test_package_code_names_no_machine_paths() -> None:
    found = {str(p.relative_to(ROOT)): hits for p in package_sources() if (hits := machine_paths(p.read_text()))}
    assert not found, f"package code names one machine's paths: {found}"


@pytest.mark.parametrize("line", [
    'FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "data" / "hy3dgen"',
    "FIXTURE_DIR = ROOT / 'tests' / 'data'",
    'json.loads(open("tests/data/schedulers/hunyuan3d2.json").read())',
    'path = ROOT.joinpath("tests", "data")',
    'os.path.join(here, "tests", "data")',
])
def test_the_tests_grep_catches_the_old_code(line: str) -> None:
    assert reads_tests(f"x = 1\n{line}\n") == [line]


@pytest.mark.parametrize("line", [
    '"""measured in tests/test_isosurface.py"""',
    'FIXTURES = resources.PACKAGE_DIR / "data" / "hy3dgen"',
    '# the tests (tests/test_atlas_*.py) compare',
])
def test_the_tests_grep_lets_docs_pass(line: str) -> None:
    assert reads_tests(line) == []


def test_the_machine_grep_catches_the_old_message() -> None:
    old = '"`/work/venvs/hy3dgen/bin/python tools/make_scheduler_fixtures.py --update` "'
    assert machine_paths(old) == [old]


# ---- what the tutorial is ---------------------------------------------------------------------------------

def _setup_module():
    spec = importlib.util.spec_from_file_location("flowlab_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    import setuptools

    real_setup, setuptools.setup = setuptools.setup, lambda **kw: None  # load the hook without building
    try:
        spec.loader.exec_module(module)
    finally:
        setuptools.setup = real_setup
    return module


def test_build_hook_and_resources_agree() -> None:
    hook = _setup_module()
    assert tuple(hook.PATTERNS) == TUTORIAL_PATTERNS
    assert hook.tutorial_files() == tutorial_files(ROOT / "notebooks")
    names = {p.as_posix() for p in tutorial_files(ROOT / "notebooks")}
    assert {"NOTATION.md", "LECTURERS_GUIDE.md", "sanitize.cfg"} <= names
    assert any(re.fullmatch(r"\d\d_.*\.ipynb", n) for n in names)
    assert any(re.fullmatch(r"exercises/EX_.*\.ipynb", n) for n in names)


def test_checkout_resources_point_at_the_one_source() -> None:
    assert notebooks_dir() == ROOT / "notebooks"
    assert (data_dir("schedulers") / "hunyuan3d2.json").is_file()
    assert (data_dir("hy3dgen") / "fixtures.json").is_file()
    with pytest.raises(FlowlabError, match="reinstall flowlab"):
        data_dir("no_such_data")


def test_gitignore_keeps_the_build_copy_out() -> None:
    assert "/flowlab/tutorial/" in (ROOT / ".gitignore").read_text().splitlines()
    assert not (PKG / "tutorial").exists(), "flowlab/tutorial must not exist in the checkout (the build makes it)"


# ---- copy_tutorial / flowlab notebooks --------------------------------------------------------------------

def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_copy_tutorial_copies_every_file_identically(tmp_path: Path) -> None:
    written = copy_tutorial(tmp_path / "nb")
    src = notebooks_dir()
    rels = tutorial_files(src)
    assert sorted(p.relative_to(tmp_path / "nb") for p in written) == rels
    for rel in rels:
        assert _digest(tmp_path / "nb" / rel) == _digest(src / rel), rel


def test_copy_tutorial_never_overwrites_without_force(tmp_path: Path) -> None:
    out = tmp_path / "nb"
    copy_tutorial(out)
    edited = out / "NOTATION.md"
    edited.write_text("my notes")
    with pytest.raises(FlowlabError, match="already exist.*--force"):
        copy_tutorial(out)
    assert edited.read_text() == "my notes"
    copy_tutorial(out, force=True)
    assert edited.read_bytes() == (notebooks_dir() / "NOTATION.md").read_bytes()


@pytest.mark.parametrize("where", ["folder", "file", "subfolder"])
def test_copy_tutorial_refuses_symlinks_even_with_force(tmp_path: Path, where: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "NOTATION.md").write_text("someone else's file")
    out = tmp_path / "nb"
    if where == "folder":
        out.symlink_to(elsewhere, target_is_directory=True)
    else:
        out.mkdir()
        if where == "file":
            (out / "NOTATION.md").symlink_to(elsewhere / "NOTATION.md")
        else:
            (out / "exercises").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(FlowlabError, match="symbolic link"):
        copy_tutorial(out, force=True)
    assert (elsewhere / "NOTATION.md").read_text() == "someone else's file"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["NOTATION.md"]


def test_copy_tutorial_refuses_bad_targets(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(FlowlabError, match="is a file"):
        copy_tutorial(tmp_path / "a_file")
    with pytest.raises(FlowlabError, match="parent folder"):
        copy_tutorial(tmp_path / "missing" / "nb")
    with pytest.raises(FlowlabError, match="own copy"):
        copy_tutorial(notebooks_dir(), force=True)


def test_notebooks_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flowlab.cli import main

    assert main(["notebooks"]) == 1
    assert "--out DIR" in capsys.readouterr().err
    assert main(["notebooks", "--out", str(tmp_path / "nb")]) == 0
    assert "NOTATION.md" in capsys.readouterr().out
    assert main(["notebooks", "--out", str(tmp_path / "nb")]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["notebooks", "--list"]) == 0
    assert "exercises/EX_01" in capsys.readouterr().out


# ---- the wheel and the sdist --------------------------------------------------------------------------------

def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist of this checkout and the wheel built FROM that sdist (``python -m build``: each in an isolated
    environment with the declared build backend), so the sdist is shown to be complete enough to build."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out)
    return out


@pytest.mark.wheel
def test_wheel_carries_tutorial_data_and_license(dist: Path) -> None:
    (wheel,) = dist.glob("flowlab-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for rel in tutorial_files(ROOT / "notebooks"):
            name = f"flowlab/tutorial/{rel.as_posix()}"
            assert name in names, name
            assert z.read(name) == (ROOT / "notebooks" / rel).read_bytes(), f"{name} differs from notebooks/{rel}"
        for folder in ("schedulers", "hy3dgen"):
            for f in (PKG / "data" / folder).iterdir():
                assert z.read(f"flowlab/data/{folder}/{f.name}") == f.read_bytes()
        assert not [n for n in names if n.startswith("tests/")]
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
        assert "License-Expression: MIT" in text
        lic = next(n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n)
        assert z.read(lic) == (ROOT / "LICENSE").read_bytes()


@pytest.mark.wheel
def test_sdist_can_run_the_tests(dist: Path) -> None:
    (sdist,) = dist.glob("flowlab-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    must = ["LICENSE", "setup.py", "pyproject.toml", "environment.yml", "requirements-nodeps.txt",
            "tests/conftest.py", "tests/nbtools.py", "tests/faults/conftest.py", "notebooks/NOTATION.md",
            "notebooks/sanitize.cfg", "flowlab/data/schedulers/hunyuan3d2.json", "flowlab/data/hy3dgen/fixtures.json",
            "scripts/run.sh"]
    must += [p.relative_to(ROOT).as_posix() for d in ("tests", "tools", "benchmarks", "notebooks")
             for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in (".py", ".ipynb", ".sh")
             and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts]
    missing = sorted(set(must) - names)
    assert not missing, f"the sdist lacks {missing}"
    assert not [n for n in names if n.startswith("flowlab/tutorial/")], "the sdist must carry notebooks/ only"


def _clean_venv(where: Path, wheel: Path) -> tuple[Path, dict[str, str]]:
    """A new venv with the wheel installed; the heavy dependencies come from the test venv's site-packages
    through a .pth line added afterwards (its own .pth files, e.g. an editable flowlab, are not processed, so
    the only importable flowlab is the wheel's). JUPYTER_PATH: a python3 kernel running this venv's python, then
    the test venv's data files (nbconvert's templates), which a venv reaching site-packages by a .pth lacks."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH")}
    env.update(PATH=f"{where / 'bin'}{os.pathsep}{env.get('PATH', '')}", JUPYTER_PATH=os.pathsep.join([str(where / "jupyter"), str(Path(sys.prefix) / "share" / "jupyter")]),
               PYTHONHASHSEED="0", MPLBACKEND="Agg")
    _run([sys.executable, "-m", "venv", str(where)], cwd=where.parent, env=env)
    py = where / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=where, env=env)
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=where,
                     env=env).strip())
    (site / "_flowlab_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    kernels = where / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        '{"argv": ["%s", "-m", "ipykernel_launcher", "-f", "{connection_file}"], '
        '"display_name": "Python 3 (flowlab wheel)", "language": "python"}' % py)
    return py, env


@pytest.mark.wheel
@pytest.mark.slow
def test_installed_wheel_works_outside_the_checkout(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("flowlab-*.whl")
    py, env = _clean_venv(tmp_path / "venv", wheel)
    work = tmp_path / "work"
    work.mkdir()
    where = _run([str(py), "-c", "import flowlab.resources as r; print(r.PACKAGE_DIR); print(r.notebooks_dir())"],
                 cwd=work, env=env).split()
    assert where[0].startswith(str(tmp_path / "venv")) and where[1] == f"{where[0]}/tutorial", where
    flowlab = str(tmp_path / "venv" / "bin" / "flowlab")

    _run([flowlab, "notebooks", "--out", "nb"], cwd=work, env=env)
    for rel in tutorial_files(ROOT / "notebooks"):
        assert (work / "nb" / rel).read_bytes() == (ROOT / "notebooks" / rel).read_bytes(), rel

    out = _run([flowlab, "exercises", "--out", "ex", "--key", "key", "--nbgrader", "grading"], cwd=work, env=env)
    n_ex = len(list((ROOT / "notebooks" / "exercises").glob("EX_*.ipynb")))
    assert len(list((work / "ex").glob("EX_*.ipynb"))) == n_ex and (work / "ex" / "NOTATION.md").is_file()
    assert len(list((work / "key").glob("EX_*.ipynb"))) == n_ex and (work / "key" / "README.md").is_file()
    assert len(list((work / "grading" / "source").glob("*/EX_*.ipynb"))) == n_ex
    assert "wrote" in out

    # the course kit (slides need the vendored reveal.js and MathJax from package data)
    _run([flowlab, "course", "--out", "kit"], cwd=work, env=env)
    slides = (work / "kit" / "slides" / "lecture.html").read_text()
    assert slides.count("<section") >= 15 and (work / "kit" / "slides" / "reveal.js" / "dist" / "reveal.js").is_file()
    assert (work / "kit" / "LAB_PLAN.md").is_file() and (work / "kit" / "handout.html").is_file()

    out = _run([flowlab, "shape", "--model", "mini", "--primitive", "box", "--steps", "2", "--octree", "32",
                "--out", "box.obj", "--quiet", "--device", "cpu"], cwd=work, env=env)
    assert (work / "box.obj").stat().st_size > 1000 and "vertices" in out

    # the hy3dgen parity fixtures (notebook 04's section) from package data
    out = _run([str(py), "-c", "from flowlab.shape.verify.parity import parity_report\n"
                "rows = parity_report()\nassert rows and all(r.passed for r in rows), rows\nprint(len(rows), 'rows')"],
               cwd=work, env=env)
    assert out.split()[0].isdigit() and int(out.split()[0]) >= 10, out

    # the tour of the wheel's notebook 05: the scheduler fixtures and "every card's checks pass"
    one = work / "one"
    one.mkdir()
    nb05 = next(p for p in (work / "nb").glob("05_*.ipynb"))
    (one / nb05.name).write_bytes(nb05.read_bytes())
    table = _run([flowlab, "tour", "--notebooks", "one", "--out", "build", "--quiet", "--device", "cpu"],
                 cwd=work, env=env, timeout=900)
    assert "FAIL" not in table and "PASS" in table, table
    assert "05_convention_atlas" in table and "hunyuan" in table.lower(), table


def test_every_module_imports() -> None:
    """Every module of the package imports (a relative import left at the wrong depth by a move fails here)."""
    import importlib
    import pkgutil

    import flowlab

    failed = {}
    for info in pkgutil.walk_packages(flowlab.__path__, "flowlab."):
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if exc.name != "triton":  # flowlab.fast's GPU kernels: triton comes with CUDA builds of torch
                failed[info.name] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - collected and reported together
            failed[info.name] = f"{type(exc).__name__}: {exc}"
    assert not failed, failed


# ---- the public CI workflow ---------------------------------------------------------------------------------

def _run_sh_torch() -> str:
    text = (ROOT / "scripts" / "run.sh").read_text()
    found = set(re.findall(r"FLOWLAB_TORCH:-(torch==[0-9][0-9.]*)", text))
    assert len(found) == 1, f"scripts/run.sh should have one torch default, found {found}"
    return found.pop()


def test_ci_matrix_and_torch_default() -> None:
    yaml = pytest.importorskip("yaml")
    text = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    job = yaml.safe_load(text)["jobs"]["test"]
    assert job["strategy"]["matrix"]["python-version"] == ["3.10", "3.11", "3.12", "3.13"]
    assert "${{ matrix.python-version }}" in text
    # the torch requirement is read from scripts/run.sh, never written here a second time
    assert not re.search(r"torch==[0-9]", text), "ci.yml pins its own torch; read scripts/run.sh's default instead"
    step = next(s for s in job["steps"] if "FLOWLAB_TORCH" in s.get("run", ""))
    script = step["run"].split("\n")[0]
    expr = re.search(r"sed -n '([^']*)'", script).group(1)
    proc = subprocess.run(["sed", "-n", expr, str(ROOT / "scripts" / "run.sh")], capture_output=True, text=True)
    assert proc.stdout.splitlines()[0] == _run_sh_torch()
    project = __import__("tomllib" if sys.version_info >= (3, 11) else "tomli").loads(
        (ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"


def test_license_matches_the_metadata() -> None:
    project = __import__("tomllib" if sys.version_info >= (3, 11) else "tomli").loads(
        (ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    requires = project["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77 for r in requires), \
        "SPDX license expressions need setuptools >= 77"
    assert not [c for c in project["project"].get("classifiers", []) if c.startswith("License ::")], \
        "with an SPDX license expression, License classifiers are an error"
