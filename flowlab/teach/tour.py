"""The main job: execute every tutorial notebook, build the HTML site, and print the verification table.

Each notebook records its checks through :func:`flowlab.claims.claim`; the tour points
``FLOWLAB_CLAIMS_FILE`` at a file in the build folder, runs the notebooks headlessly with
nbclient (in the current Python environment), and returns one row per claim. With ``html`` it also
writes the site (:mod:`flowlab.teach.site`): one page per notebook and per Markdown page in the notebooks
folder, and a landing page ``index.html`` with the reading order and the verification table.

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


class TourInterrupted(Exception):
    """The tour was stopped by SIGINT; ``runs`` and ``claims`` hold what was done before."""

    def __init__(self, runs: list[NotebookRun], claims: list[ClaimRow]):
        super().__init__("interrupted")
        self.runs, self.claims = runs, claims


class _StopTour(Exception):
    """Raised inside nbclient (cell-start hook) to stop a notebook after an interrupt."""


def find_notebooks(folder: str | Path | None) -> list[Path]:
    """The tutorial notebooks ``NN_*.ipynb`` in reading order.

    ``folder`` defaults to ``./notebooks``, else the ``notebooks`` folder beside the installed
    package (a source checkout).
    """
    candidates = [Path(folder)] if folder else [Path.cwd() / "notebooks", Path(__file__).resolve().parents[2] / "notebooks"]
    for cand in candidates:
        if cand.is_dir():
            found = sorted(p for p in cand.glob("[0-9][0-9]_*.ipynb"))
            if found:
                return found
    tried = ", ".join(str(c) for c in candidates)
    raise FlowlabError(f"no tutorial notebooks (NN_*.ipynb) found in {tried}; "
                       "run from the flowlab checkout or pass --notebooks DIR")


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

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.interrupted = False
        self.client: Any = None
        self.cell_index: int | None = None
        self.n_cells = 0

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
                                     on_cell_start=self._on_cell_start)
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


def run_tour(notebooks: list[Path], out: Path, *, device: str, timeout: float = 900, html: bool = True,
             progress: bool = True) -> tuple[list[NotebookRun], list[ClaimRow]]:
    """Execute ``notebooks`` into ``out``; return how each run went and every claim made.

    Raises :class:`TourInterrupted` (after writing what ran and the index) on SIGINT.
    """
    timeout = check_timeout(timeout)
    _check_build_folder(out)
    loaded, read_errors = _read_all(notebooks)
    summaries: dict[str, Any] = {}
    site = _plan_site(out, notebooks, loaded, summaries) if html else None
    claims_file = out / "claims.jsonl"
    claims_file.unlink(missing_ok=True)
    runs: list[NotebookRun] = []
    executed: dict[str, Any] = {}
    runner = _Runner(timeout)
    _execute_all(notebooks, out, device, runner, loaded, read_errors, claims_file, runs, executed, progress)
    claims = [ClaimRow(**json.loads(line)) for line in claims_file.read_text().splitlines() if line.strip()] \
        if claims_file.exists() else []
    if site is not None:
        _finish_site(site, notebooks, runs, claims, summaries, executed, interrupted=runner.interrupted)
    if runner.interrupted:
        raise TourInterrupted(runs, claims)
    return runs, claims


def _check_build_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise FlowlabError(f"cannot write to the build folder {out} ({exc}); pass --out to a writable folder") from None


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


def _plan_site(out: Path, notebooks: list[Path], loaded: dict[str, Any], summaries: dict[str, Any]) -> Any:
    """The HTML site's plan (titles from every notebook, the pages' assets copied); fills ``summaries``."""
    from .site import Site, notebook_summary
    for name, nb in loaded.items():
        summaries[name] = notebook_summary(nb)
    source = notebooks[0].parent if notebooks else Path("notebooks")
    _, others = Site.other_sources(source)
    titles = {k: v.title for k, v in summaries.items() if v.title}
    for p in others:
        try:
            titles[p.relative_to(source).as_posix()] = notebook_summary(read_notebook(p)).title
        except (FlowlabError, ValueError):
            pass
    site = Site.plan(out, source, notebooks, titles)
    site.copy_assets()
    return site


def _execute_all(notebooks: list[Path], out: Path, device: str, runner: "_Runner", loaded: dict[str, Any],
                 read_errors: dict[str, str], claims_file: Path, runs: list[NotebookRun], executed: dict[str, Any],
                 progress: bool) -> None:
    """Run each notebook in its own kernel (claims appended to ``claims_file``), appending to ``runs``; Ctrl-C
    stops after the running notebook, a second one kills its kernel."""
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
            env = {CLAIMS_FILE_ENV: str(claims_file.resolve()), NOTEBOOK_ENV: path.name, DEVICE_ENV: device,
                   "PYTHONWARNINGS": "ignore"}
            start = time.perf_counter()
            kernel_log.write(f"== {path.name}\n")
            kernel_log.flush()
            with _env(env):
                err = runner.execute(nb, path, kernel_log)
            runs.append(NotebookRun(path.name, time.perf_counter() - start, err, "failed" if err else "ran"))
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


def _html_escape(text: str) -> str:
    import html
    return html.escape(text)


def _finish_site(site: Any, notebooks: list[Path], runs: list[NotebookRun], claims: list[ClaimRow],
                 summaries: dict, executed: dict, *, interrupted: bool) -> None:
    """Every page: notebooks (placeholders for those not run), Markdown and exercise pages, the index."""
    from .site import landing_body
    for r in runs:  # the sidebar marks first, so that every page shows every notebook's status
        href = site.sources.get(r.notebook)
        if href is not None:
            site.page(href).status = {"ran": "", "failed": "failed"}.get(r.status, r.status)
    for r in runs:
        href = site.sources.get(r.notebook)
        if href is None:
            continue
        if r.notebook in executed:
            banner = (f'<div class="fl-banner">This notebook did not run to the end in this tour: '
                      f'{_html_escape(r.error)}</div>') if r.error else ""
            site.write_notebook_page(href, executed[r.notebook], banner)
        elif r.status == "unreadable":
            site.write_placeholder(href, f"This notebook could not be read, so the tour did not run it: {r.error}")
        else:
            site.write_placeholder(href, "The tour was interrupted before this notebook ran. "
                                         "Run flowlab tour again for a complete build.")
    source = site.source
    for src, href in site.sources.items():
        pg = site.page(href)
        if src.endswith(".md"):
            site.write_markdown_page(href, (source / src).read_text(encoding="utf-8", errors="replace"))
        elif pg.section == "exercises":
            try:
                nb = read_notebook(source / src)
            except FlowlabError as exc:
                site.write_placeholder(href, str(exc))
                continue
            site.write_notebook_page(href, nb, '<div class="fl-note">A solved exercise '
                                               "notebook, shown with its stored outputs (nbval checks them); "
                                               "the tour does not execute it.</div>")
    site.write_shell("index.html", landing_body(site, runs, claims, summaries, interrupted=interrupted,
                                                total=len(notebooks)))


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
