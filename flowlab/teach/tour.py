"""The main job: execute every tutorial notebook, build the HTML site, and print the verification table.

Each notebook records its checks through :func:`flowlab.claims.claim`; the tour points
``FLOWLAB_CLAIMS_FILE`` at a file in the build folder, runs the notebooks headlessly with
nbclient (in the current Python environment), and returns one row per claim. With ``html`` it also
builds the site with Sphinx (:mod:`flowlab.teach.site`): one page per notebook and per Markdown page in the
notebooks folder, an API reference, a landing page ``index.html`` with the reading order and the
verification table, and the Chinese edition in ``zh/``.

Executed notebooks are cached (:mod:`flowlab.teach.site.cache`, jupyter-cache in ``.jupyter_cache``): a
notebook whose code and flowlab are unchanged since an earlier tour is not run again; its claims
come from the cache. ``force`` runs every notebook.

Faults stay local: a notebook that cannot be read or that fails gets a failed row and the others
still run. On SIGINT (Ctrl-C) the running cell is interrupted, the kernel is shut down, the pages of
what ran are written, ``index.html`` says which notebooks ran, and :class:`TourInterrupted` is raised.
A second Ctrl-C kills the kernel at once.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..claims import CLAIMS_FILE_ENV, NOTEBOOK_ENV, infer_kind
from ..device import DEVICE_ENV
from ..errors import FlowlabError
from ..io import write_atomic


@dataclass(frozen=True)
class ClaimRow:
    notebook: str
    claim: str
    error: float | None
    tol: float | None
    passed: bool
    kind: str = ""

    def __post_init__(self) -> None:
        if not self.kind:  # rows written before claims recorded their kind
            object.__setattr__(self, "kind", infer_kind(self.claim, self.tol))


@dataclass(frozen=True)
class NotebookRun:
    notebook: str
    seconds: float
    error: str | None  # None when the notebook ran to the end
    status: str = "ran"  # "ran", "failed", "not run" (interrupted before it), "unreadable"
    cached: bool = False  # taken from the execution cache of an earlier tour


class TourInterrupted(Exception):
    """The tour was stopped by SIGINT; ``runs`` and ``claims`` hold what was done before."""

    def __init__(self, runs: list[NotebookRun], claims: list[ClaimRow]):
        super().__init__("interrupted")
        self.runs, self.claims = runs, claims


class _StopTour(Exception):
    """Raised inside nbclient (cell-start hook) to stop a notebook after an interrupt."""


def find_notebooks(folder: str | Path | None) -> list[Path]:
    """The tutorial notebooks ``NN_*.ipynb`` in reading order.

    ``folder`` defaults to ``./notebooks``, else the tutorial that ships with flowlab
    (:func:`flowlab.resources.notebooks_dir`: the wheel's copy, or a checkout's ``notebooks/``).
    """
    from ..resources import tutorial_candidates

    candidates = [Path(folder)] if folder else [Path.cwd() / "notebooks", *tutorial_candidates()]
    for cand in candidates:
        if cand.is_dir():
            found = sorted(p for p in cand.glob("[0-9][0-9]_*.ipynb"))
            if found:
                return found
    tried = ", ".join(str(c) for c in candidates)
    raise FlowlabError(f"no tutorial notebooks (NN_*.ipynb) found in {tried}; pass --notebooks DIR, "
                       "or reinstall flowlab (pip install --force-reinstall flowlab) to get its tutorial back")


def check_timeout(timeout: float) -> float:
    """A per-cell limit must be a positive number of seconds (0 and negatives are refused)."""
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise FlowlabError(f"--timeout must be a number of seconds, got {timeout!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise FlowlabError(f"--timeout must be a positive number of seconds, got {timeout!r}; "
                           "there is no 'no limit' setting: pass a large value (e.g. --timeout 86400) instead")
    return value


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _first_line(text: str, limit: int = 60) -> str:
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


def _ansi_free(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def read_notebook(path: Path):
    """Read a notebook; a file that is not a notebook becomes a FlowlabError naming it."""
    import nbformat
    try:
        return nbformat.read(path, as_version=4)
    except OSError as exc:
        raise FlowlabError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # NotJSONError, ValidationError, UnicodeDecodeError, KeyError ...
        what = "not valid JSON" if type(exc).__name__ == "NotJSONError" else f"not a valid notebook ({type(exc).__name__})"
        detail = _first_line(_ansi_free(str(exc)), 120)
        raise FlowlabError(f"cannot read {path.name}: it is {what}: {detail}; restore it "
                           f"(git checkout -- {path.name}) or fix it in JupyterLab") from None


KERNEL_LOG = "kernels.log"


class _Runner:
    """Executes one notebook at a time in a worker thread; the main thread handles SIGINT."""

    def __init__(self, timeout: float, kernel_args: list[str] | None = None):
        self.timeout = timeout
        self.kernel_args = list(kernel_args or [])
        self.interrupted = False
        self.client: Any = None
        self.cell_index: int | None = None
        self.n_cells = 0
        self.cell_bar: Any = None  # a tqdm bar over the running notebook's code cells (total known), or None

    # SIGINT: first one interrupts the running cell (the kernel gets SIGINT, the cell ends with
    # KeyboardInterrupt, nbclient shuts the kernel down); the second one kills the kernel.
    def on_sigint(self, signum: int, frame: Any) -> None:
        if self.interrupted:
            self._signal_kernel(signal.SIGKILL)
            raise KeyboardInterrupt
        self.interrupted = True
        print("\nflowlab tour: interrupted, stopping the running notebook (Ctrl-C again to kill it)",
              file=sys.stderr)
        self._signal_kernel(signal.SIGINT)

    def kernel_pid(self) -> int | None:
        km = getattr(self.client, "km", None)
        proc = getattr(getattr(km, "provisioner", None), "process", None)
        return getattr(proc, "pid", None)

    def _signal_kernel(self, sig: int) -> None:
        pid = self.kernel_pid()
        if pid:
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def _on_cell_start(self, cell: Any, cell_index: int) -> None:
        if self.interrupted:
            raise _StopTour()
        self.cell_index = cell_index
        if self.cell_bar is not None:
            self.cell_bar.update(1)

    def where(self, nb: Any) -> str:
        """``in cell 3 of 12 (`first line`)``, or ``before its first cell``."""
        if self.cell_index is None:
            return "before its first cell"
        src = nb.cells[self.cell_index].source if self.cell_index < len(nb.cells) else ""
        return f"in cell {self.cell_index + 1} of {self.n_cells} (`{_first_line(src)}`)"

    def execute(self, nb: Any, path: Path, log: Any = None) -> str | None:
        """Run ``nb`` in place; return None, or a one-line reason why it did not run to the end.

        ``log``: a file that receives the kernel's own stdout / stderr (its warnings and the
        tracebacks of its shutdown after a timeout), which would otherwise interleave with the table.
        """
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        self.cell_index = None
        self.n_cells = len(nb.cells)
        self.client = NotebookClient(nb, timeout=self.timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent.resolve())}},
                                     on_cell_start=self._on_cell_start, extra_arguments=self.kernel_args)
        box: dict[str, BaseException] = {}

        def work() -> None:
            try:
                self.client.execute(**({"stdout": log, "stderr": log} if log is not None else {}))
            except BaseException as exc:  # reported below, in the main thread
                box["exc"] = exc

        worker = threading.Thread(target=work, name=f"tour-{path.stem}", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
        exc = box.get("exc")
        if exc is None:
            return None
        if self.interrupted:
            return f"interrupted {self.where(nb)}"
        if isinstance(exc, CellTimeoutError):
            return (f"timed out {self.where(nb)}: the cell ran longer than the per-cell limit of "
                    f"{self.timeout:g} s; pass a larger --timeout")
        if isinstance(exc, CellExecutionError):
            ename = getattr(exc, "ename", "") or "error"
            evalue = _first_line(_ansi_free(getattr(exc, "evalue", "") or ""), 200)
            return f"{ename} {self.where(nb)}: {evalue}" if evalue else f"{ename} {self.where(nb)}"
        if isinstance(exc, DeadKernelError):
            return (f"the kernel died {self.where(nb)} (out of memory? a crash in native code? "
                    f"its output is in {KERNEL_LOG} in the build folder)")
        if isinstance(exc, _StopTour):
            return "interrupted"
        lines = [ln for ln in _ansi_free(str(exc)).splitlines() if ln.strip()]
        return f"{type(exc).__name__} {self.where(nb)}: {lines[-1] if lines else ''}".rstrip(": ")


def _open_cache(out: Path) -> Any:
    try:
        from .site.cache import CACHE_DIR, ExecutionCache
        return ExecutionCache(out / CACHE_DIR)
    except FlowlabError:  # jupyter-cache is not installed: run every notebook
        return None


def _read_claims(claims_file: Path, skip: int = 0) -> list[dict]:
    if not claims_file.exists():
        return []
    return [json.loads(line) for line in claims_file.read_text().splitlines()[skip:] if line.strip()]


def _run_one(runner: _Runner, path: Path, nb: Any, claims_file: Path, device: str, cache: Any, force: bool,
             kernel_log: Any) -> NotebookRun:
    """Take ``path`` from the cache, or execute it in place and cache it when it ran to the end."""
    hit = None if cache is None or force else cache.lookup(nb)
    if hit is not None:
        merged, rows, seconds = hit
        nb.cells = merged.cells
        with open(claims_file, "a", encoding="utf-8") as sink:
            sink.writelines(json.dumps(row) + "\n" for row in rows)
        return NotebookRun(path.name, seconds, None, "ran", cached=True)
    before = len(_read_claims(claims_file))
    kernelspec = json.loads(json.dumps(nb.metadata.get("kernelspec"))) if "kernelspec" in nb.metadata else None
    env = {CLAIMS_FILE_ENV: str(claims_file.resolve()), NOTEBOOK_ENV: path.name, DEVICE_ENV: device,
           "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    kernel_log.write(f"== {path.name}\n")
    kernel_log.flush()
    with _env(env):
        err = runner.execute(nb, path, kernel_log)
    seconds = time.perf_counter() - start
    if err is None and cache is not None and not runner.interrupted:
        cache.store(nb, path.name, _read_claims(claims_file, before), seconds, kernelspec)
    return NotebookRun(path.name, seconds, err, "failed" if err else "ran")


def run_tour(notebooks: list[Path], out: Path, *, device: str, timeout: float = 900, html: bool = True,
             progress: bool = True, force: bool = False) -> tuple[list[NotebookRun], list[ClaimRow]]:
    """Execute ``notebooks`` into ``out``; return how each run went and every claim made.

    ``out`` must be new, empty, or an earlier tour's build folder (:func:`flowlab.teach.site.claim_out_dir`).
    A notebook unchanged since an earlier tour (and flowlab unchanged) comes from the cache unless
    ``force``. Raises :class:`TourInterrupted` (after writing what ran and the index) on SIGINT.
    """
    from .site import build_site, claim_out_dir
    timeout = check_timeout(timeout)
    claim_out_dir(out)
    loaded, read_errors = _read_all(notebooks)
    kernel_args: list[str] = []
    if html:
        from .site.figure_alt import KERNEL_ARGS as kernel_args
    claims_file = out / "claims.jsonl"
    claims_file.unlink(missing_ok=True)
    runs: list[NotebookRun] = []
    executed: dict[str, Any] = {}
    runner = _Runner(timeout, kernel_args)
    _execute_all(notebooks, out, device, runner, loaded, read_errors, claims_file, runs, executed, progress,
                 _open_cache(out), force)
    claims = [ClaimRow(**row) for row in _read_claims(claims_file)]
    if html:
        source = notebooks[0].parent if notebooks else Path("notebooks")
        build_site(out, source, notebooks, runs, claims, executed, interrupted=runner.interrupted, force=force)
    if runner.interrupted:
        raise TourInterrupted(runs, claims)
    return runs, claims


def _read_all(notebooks: list[Path]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each notebook read (by file name), and the read error of each that could not be."""
    loaded: dict[str, Any] = {}
    read_errors: dict[str, str] = {}
    for path in notebooks:
        try:
            loaded[path.name] = read_notebook(path)
        except FlowlabError as exc:
            read_errors[path.name] = str(exc)
    return loaded, read_errors


def _execute_all(notebooks: list[Path], out: Path, device: str, runner: "_Runner", loaded: dict[str, Any],
                 read_errors: dict[str, str], claims_file: Path, runs: list[NotebookRun], executed: dict[str, Any],
                 progress: bool, cache: Any = None, force: bool = False) -> None:
    """Run each notebook in its own kernel (claims appended to ``claims_file``) or take it from ``cache``,
    appending to ``runs``; Ctrl-C stops after the running notebook, a second one kills its kernel."""
    import nbformat

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(notebooks), desc="notebooks", unit="nb", file=sys.stderr)
    kernel_log = open(out / KERNEL_LOG, "w", encoding="utf-8")
    in_main = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGINT, runner.on_sigint) if in_main else None
    try:
        for path in notebooks:
            if bar is not None:
                bar.set_postfix_str(path.name)
            if runner.interrupted:
                runs.append(NotebookRun(path.name, 0.0, None, "not run"))
                continue
            if path.name in read_errors:
                runs.append(NotebookRun(path.name, 0.0, read_errors[path.name], "unreadable"))
                continue
            nb = loaded[path.name]
            if bar is not None:  # the cells of a long notebook, under the notebooks bar; both go to stderr only
                runner.cell_bar = tqdm(total=sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip()),
                                       desc=f"  {path.stem[:20]}", unit="cell", leave=False, position=1,
                                       file=sys.stderr)
            try:
                runs.append(_run_one(runner, path, nb, claims_file, device, cache, force, kernel_log))
            finally:
                if runner.cell_bar is not None:
                    runner.cell_bar.close()
                    runner.cell_bar = None
            write_atomic(out / path.name, nbformat.writes(nb))
            executed[path.name] = nb
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:  # a second Ctrl-C: the kernel was killed, the running notebook is lost
        runner.interrupted = True
        done = {r.notebook for r in runs}
        for p in notebooks:
            if p.name in done:
                continue
            first = not any(r.status == "failed" and r.error == "interrupted: the kernel was killed" for r in runs)
            runs.append(NotebookRun(p.name, 0.0, "interrupted: the kernel was killed", "failed") if first
                        else NotebookRun(p.name, 0.0, None, "not run"))
    finally:
        kernel_log.close()
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
        if bar is not None:
            bar.close()


def format_table(runs: list[NotebookRun], claims: list[ClaimRow]) -> str:
    """The verification table: one row per claim, plus a FAIL row for each notebook that broke."""
    rows = [(c.notebook, c.claim, "exact" if c.kind == "exact" and c.passed else
             ("-" if c.error is None else f"{c.error:.2e}"),
             "-" if c.tol is None else f"{c.tol:.0e}", "PASS" if c.passed else "FAIL") for c in claims]
    for r in runs:
        if r.status == "not run":
            rows.append((r.notebook, "not run: the tour was interrupted before it", "-", "-", "SKIP"))
        elif r.error:
            rows.append((r.notebook, f"notebook runs to the end ({r.error[:160]})", "-", "-", "FAIL"))
    head = ("notebook", "claim", "error", "tol", "result")
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(5)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    n_fail = sum(r[4] == "FAIL" for r in rows)
    n_skip = sum(r[4] == "SKIP" for r in rows)
    lines.append(f"{len(rows) - n_fail - n_skip} passed, {n_fail} failed" + (f", {n_skip} not run" if n_skip else ""))
    return "\n".join(lines)
