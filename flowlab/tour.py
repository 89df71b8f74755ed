"""The main job: execute every tutorial notebook, export HTML, and print the verification table.

Each notebook records its checks through :func:`flowlab.claims.claim`; the tour points
``FLOWLAB_CLAIMS_FILE`` at a file in the build folder, runs the notebooks headlessly with
nbclient (in the current Python environment), turns each executed notebook into a standalone HTML
page whose formulas render offline (a local MathJax copy), and returns one row per claim.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .claims import CLAIMS_FILE_ENV, NOTEBOOK_ENV
from .device import DEVICE_ENV
from .errors import FlowlabError
from .io import write_atomic

MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"


@dataclass(frozen=True)
class ClaimRow:
    notebook: str
    claim: str
    error: float | None
    tol: float | None
    passed: bool


@dataclass(frozen=True)
class NotebookRun:
    notebook: str
    seconds: float
    error: str | None  # None when the notebook ran to the end


def find_notebooks(folder: str | Path | None) -> list[Path]:
    """The tutorial notebooks ``NN_*.ipynb`` in reading order.

    ``folder`` defaults to ``./notebooks``, else the ``notebooks`` folder beside the installed
    package (a source checkout).
    """
    candidates = [Path(folder)] if folder else [Path.cwd() / "notebooks", Path(__file__).resolve().parent.parent / "notebooks"]
    for cand in candidates:
        if cand.is_dir():
            found = sorted(p for p in cand.glob("[0-9][0-9]_*.ipynb"))
            if found:
                return found
    tried = ", ".join(str(c) for c in candidates)
    raise FlowlabError(f"no tutorial notebooks (NN_*.ipynb) found in {tried}; "
                       "run from the flowlab checkout or pass --notebooks DIR")


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


def _copy_mathjax(out: Path) -> None:
    target = out / "mathjax"
    if (target / "MathJax.js").exists():
        return
    try:
        import jupyter_server_mathjax
    except ImportError as exc:
        raise FlowlabError("the HTML pages need a local MathJax: pip install jupyter-server-mathjax "
                           "(or pass --no-html)") from exc
    src = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    tmp = out / "mathjax.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    tmp.rename(target)


def run_tour(notebooks: list[Path], out: Path, *, device: str, timeout: int = 900, html: bool = True,
             progress: bool = True) -> tuple[list[NotebookRun], list[ClaimRow]]:
    """Execute ``notebooks`` into ``out``; return how each run went and every claim made."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise FlowlabError(f"cannot write to the build folder {out} ({exc}); pass --out to a writable folder") from None
    if html:
        _copy_mathjax(out)
        from nbconvert import HTMLExporter
        exporter = HTMLExporter(mathjax_url=MATHJAX_URL)

    claims_file = out / "claims.jsonl"
    claims_file.unlink(missing_ok=True)
    runs: list[NotebookRun] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(notebooks), desc="notebooks", unit="nb", file=sys.stderr)
    for path in notebooks:
        if bar is not None:
            bar.set_postfix_str(path.name)
        nb = nbformat.read(path, as_version=4)
        env = {CLAIMS_FILE_ENV: str(claims_file.resolve()), NOTEBOOK_ENV: path.name, DEVICE_ENV: device,
               "PYTHONWARNINGS": "ignore"}
        start = time.perf_counter()
        err: str | None = None
        with _env(env):
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent.resolve())}})
            try:
                client.execute()
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
                text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # drop ANSI colours from tracebacks
                lines = [ln for ln in text.strip().splitlines() if ln.strip()]
                err = lines[-1] if lines else type(exc).__name__
        runs.append(NotebookRun(path.name, time.perf_counter() - start, err))
        write_atomic(out / path.name, nbformat.writes(nb))
        if html:
            body, _ = exporter.from_notebook_node(nb)
            # require.js (a CDN script) only serves widgets, which the tutorials do not use
            body = re.sub(r'<script src="[^"]*require(\.min)?\.js"></script>', "", body)
            write_atomic(out / (path.stem + ".html"), body)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    claims = [ClaimRow(**json.loads(line)) for line in claims_file.read_text().splitlines() if line.strip()] \
        if claims_file.exists() else []
    if html:
        write_atomic(out / "index.html", _index_html(runs, claims))
    return runs, claims


def _index_html(runs: list[NotebookRun], claims: list[ClaimRow]) -> str:
    import html as h
    items = "\n".join(
        f'<li><a href="{h.escape(Path(r.notebook).stem)}.html">{h.escape(r.notebook)}</a>'
        f' ({r.seconds:.1f} s){" &mdash; FAILED: " + h.escape(r.error) if r.error else ""}</li>' for r in runs)
    rows = "\n".join(
        f"<tr><td>{h.escape(c.notebook)}</td><td>{h.escape(c.claim)}</td>"
        f"<td>{'' if c.error is None else f'{c.error:.2e}'}</td><td>{'PASS' if c.passed else 'FAIL'}</td></tr>"
        for c in claims)
    return (f"<!doctype html><meta charset='utf-8'><title>flowlab tour</title><h1>flowlab tour</h1><ol>{items}</ol>"
            f"<h2>Verification</h2><table border=1 cellpadding=4><tr><th>notebook</th><th>claim</th>"
            f"<th>error</th><th>result</th></tr>{rows}</table>")


def format_table(runs: list[NotebookRun], claims: list[ClaimRow]) -> str:
    """The verification table: one row per claim, plus a FAIL row for each notebook that broke."""
    rows = [(c.notebook, c.claim, "-" if c.error is None else f"{c.error:.2e}",
             "-" if c.tol is None else f"{c.tol:.0e}", "PASS" if c.passed else "FAIL") for c in claims]
    for r in runs:
        if r.error:
            rows.append((r.notebook, f"notebook runs to the end ({r.error[:80]})", "-", "-", "FAIL"))
    head = ("notebook", "claim", "error", "tol", "result")
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(5)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    n_fail = sum(r[4] == "FAIL" for r in rows)
    lines.append(f"{len(rows) - n_fail} passed, {n_fail} failed")
    return "\n".join(lines)
