"""``flowlab tour``: run every tutorial notebook and verify every claim they make."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..device import resolve_device

NAME = "tour"
HELP = "execute every tutorial notebook into a build folder and print the verification table"
DESCRIPTION = """\
Execute notebooks/NN_*.ipynb headlessly (in this Python environment), write the executed
notebooks and an offline HTML site to the build folder (one page per notebook and per Markdown
page in the notebooks folder, formulas typeset by a local MathJax 3, and index.html: the reading
order and the verification table), then print one row per claim the notebooks make: the measured
error, the tolerance, PASS or FAIL.
A notebook that cannot be read or that fails gets a FAIL row that names the cell; the others
still run. The kernels' own messages go to kernels.log in the build folder.
Exit status 0 when everything passed, 1 when any claim failed or a notebook broke, 130 when
interrupted (Ctrl-C stops the running cell and shuts its kernel down; the build folder keeps
what ran and index.html says which notebooks did).
The notebooks run on --device (default: CUDA when present, else CPU)."""


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a positive number of seconds, got {text!r} (there is no 'no limit' value; "
            "pass a large one, e.g. 86400)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notebooks", metavar="DIR", help="folder with NN_*.ipynb (default: ./notebooks)")
    parser.add_argument("--out", metavar="DIR", default="build/tour", help="build folder (default: build/tour)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--timeout", type=_positive_seconds, default=900, metavar="S",
                        help="per-cell time limit in seconds, > 0 (default 900); a cell that runs longer "
                             "fails its notebook, and the row names the cell and the limit")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML pages")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..teach.tour import TourInterrupted, find_notebooks, format_table, run_tour

    device = resolve_device(args.device)
    notebooks = find_notebooks(args.notebooks)
    out = Path(args.out)
    print(f"flowlab tour: {len(notebooks)} notebooks on {device} -> {out}/", file=sys.stderr)
    try:
        runs, claims = run_tour(notebooks, out, device=str(device), timeout=args.timeout,
                                html=not args.no_html, progress=not args.quiet)
    except TourInterrupted as stop:
        print(format_table(stop.runs, stop.claims))
        ran = [r.notebook for r in stop.runs if r.status == "ran"]
        cut = [r.notebook for r in stop.runs if r.status == "failed" and (r.error or "").startswith("interrupted")]
        print(f"flowlab tour: interrupted" + (f" during {cut[0]}" if cut else "")
              + f"; {len(ran)} of {len(notebooks)} notebooks had run to the end ({', '.join(ran) or 'none'}); "
              "the kernel was shut down; "
              + (f"{out}/index.html says which notebooks ran" if not args.no_html else f"executed notebooks in {out}/"),
              file=sys.stderr)
        return 130
    print(format_table(runs, claims))
    ok = claims and all(c.passed for c in claims) and not any(r.error for r in runs)
    if not claims:
        print("no claims were recorded: the notebooks checked nothing", file=sys.stderr)
    print(f"executed notebooks and HTML pages: {out}/index.html" if not args.no_html else f"executed notebooks: {out}/",
          file=sys.stderr)
    return 0 if ok else 1
