"""flowlab's pytest plugin (entry point ``pytest11``: ``flowlab = flowlab.testing.plugin``), active once flowlab is
installed.

Fixtures (each returns a function that runs the check and FAILS the test with the report's sentences when a
finding is made that ``allow`` does not list; otherwise it returns the :class:`~flowlab.testing.report.Report`):

* ``check_sampler(fn, convention, ..., allow=())``: :func:`flowlab.testing.check_sampler`;
* ``check_prediction(fn, convention, kind, ..., allow=())``: :func:`flowlab.testing.check_prediction`;
* ``check_scheduler(obj, ..., allow=())``: ``flowlab.testing.scheduler.check_scheduler``.

Notebook claims: ``pytest --flowlab-claims NB.ipynb [DIR ...]`` executes each notebook once (nbclient, the current
Python environment, the notebook's folder as working directory) and makes every ``flowlab.claims.claim`` /
``claim_exact`` it ran into its own test item, named by the claim's text (so each shows up in ``--junitxml``),
plus one item "notebook runs to the end". It works beside nbval: ``pytest --nbval --flowlab-claims nb.ipynb``
compares the stored outputs AND reports each claim.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ..claims import CLAIMS_FILE_ENV, NOTEBOOK_ENV

_STASH = pytest.StashKey[dict]()  # the notebooks --flowlab-claims names (resolved paths)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flowlab", "flowlab: checks of your own sampler code and notebook claims")
    group.addoption("--flowlab-claims", action="append", nargs="+", default=[], metavar="NOTEBOOK",
                    help="execute these notebooks (or every .ipynb under these folders) and report each "
                         "flowlab.claims.claim() in them as its own test")
    group.addoption("--flowlab-claims-timeout", type=float, default=900.0, metavar="SECONDS",
                    help="timeout per notebook cell for --flowlab-claims (default 900)")


def _notebooks(values: list[list[str]], root: Path) -> list[Path]:
    found: list[Path] = []
    for value in (v for group in values for v in group):
        path = (root / value).resolve() if not Path(value).is_absolute() else Path(value)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise pytest.UsageError(f"--flowlab-claims: {value!r} is not a notebook (.ipynb) or a folder of them")
    return list(dict.fromkeys(found))


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STASH] = {p: True for p in _notebooks(config.getoption("flowlab_claims") or [],
                                                         Path(config.invocation_params.dir))}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A --flowlab-claims notebook that pytest reaches through its own arguments (or testpaths)."""
    if file_path.suffix == ".ipynb" and file_path.resolve() in parent.config.stash.get(_STASH, {}):
        return ClaimsNotebook.from_parent(parent, path=file_path, name=file_path.name)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The other --flowlab-claims notebooks: not among pytest's arguments, so nbval (if on) leaves them alone."""
    done = {item.path.resolve() for item in items if isinstance(item, (ClaimItem, RunItem))}
    for path in config.stash.get(_STASH, {}):
        if path not in done:
            items.extend(ClaimsNotebook.from_parent(session, path=path, name=path.name).collect())


@contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_notebook_claims(path: Path, timeout: float) -> tuple[list[dict[str, Any]], str | None]:
    """Execute ``path`` once; return the claims it recorded (dicts with claim, passed, error, tol) and the error
    that stopped it (None when it ran to the end). The notebook file is not modified."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(str(path), as_version=4)
    with tempfile.TemporaryDirectory(prefix="flowlab-claims-") as tmp:
        claims_file = Path(tmp) / "claims.jsonl"
        err = None
        with _environ({CLAIMS_FILE_ENV: str(claims_file), NOTEBOOK_ENV: path.name}):
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}})
            try:
                client.execute()
            except CellExecutionError as exc:
                lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
                err = lines[-1] if lines else "a cell failed"
            except Exception as exc:  # kernel died, timeout
                err = f"{type(exc).__name__}: {exc}"
        rows = [json.loads(ln) for ln in claims_file.read_text().splitlines() if ln.strip()] \
            if claims_file.exists() else []
    return rows, err


class ClaimsNotebook(pytest.File):
    """A notebook whose claims are the test items (the notebook runs once, when collected)."""

    def collect(self) -> Iterator[pytest.Item]:
        rows, err = run_notebook_claims(self.path, self.config.getoption("flowlab_claims_timeout"))
        seen: dict[str, int] = {}
        for row in rows:
            text = str(row.get("claim", "claim"))
            seen[text] = seen.get(text, 0) + 1
            name = text if seen[text] == 1 else f"{text} [{seen[text]}]"
            yield ClaimItem.from_parent(self, name=name, row=row)
        failed_claim = any(not r.get("passed") for r in rows)
        yield RunItem.from_parent(self, name="notebook runs to the end",
                                  error=None if err is None or failed_claim else err,
                                  stopped=err if failed_claim else None)


class ClaimItem(pytest.Item):
    def __init__(self, *, row: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.row = row

    def runtest(self) -> None:
        if not self.row.get("passed"):
            e, tol = self.row.get("error"), self.row.get("tol")
            measured = "does not hold" if e is None else f"measured {e:.3e}, tolerance {tol:.0e}"
            raise ClaimFailed(f"claim failed: {self.name}: {measured}")

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        return str(excinfo.value) if isinstance(excinfo.value, ClaimFailed) else super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"claim: {self.name}"


class RunItem(pytest.Item):
    def __init__(self, *, error: str | None, stopped: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error, self.stopped = error, stopped

    def runtest(self) -> None:
        if self.error:
            raise ClaimFailed(f"{self.path.name} stopped with an error that is not a claim: {self.error}")
        if self.stopped:
            raise ClaimFailed(f"{self.path.name} stopped at a failed claim; the claims after it did not run")

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        return str(excinfo.value) if isinstance(excinfo.value, ClaimFailed) else super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}: runs to the end"


class ClaimFailed(AssertionError):
    """A claim measured outside its tolerance (or a notebook that stopped)."""


# ---- fixtures for the three checks ---------------------------------------------------------------------------

def _asserting(check: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, allow: tuple[str, ...] | list[str] = (), **kwargs: Any) -> Any:
        report = check(*args, **kwargs)
        unexpected = [f for f in report.findings if f.code not in set(allow)]
        if unexpected:
            pytest.fail(str(report), pytrace=False)
        return report
    run.__doc__ = check.__doc__
    return run


@pytest.fixture
def check_sampler() -> Callable[..., Any]:
    """``check_sampler(fn, convention, ..., allow=())``: fails the test with the findings; returns the report."""
    from .sampler import check_sampler as check
    return _asserting(check)


@pytest.fixture
def check_prediction() -> Callable[..., Any]:
    """``check_prediction(fn, convention, kind, ..., allow=())``: fails the test with the findings."""
    from .prediction import check_prediction as check
    return _asserting(check)


@pytest.fixture
def check_scheduler() -> Callable[..., Any]:
    """``check_scheduler(obj, ..., allow=())`` (flowlab.testing.scheduler): fails the test with the findings."""
    from .scheduler import check_scheduler as check
    return _asserting(check)
