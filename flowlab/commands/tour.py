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
notebooks and standalone HTML pages (formulas render offline) to the build folder, then print one
row per claim the notebooks make: the measured error, the tolerance, PASS or FAIL.
Exit status 0 when everything passed, 1 when any claim failed or a notebook broke.
The notebooks run on --device (default: CUDA when present, else CPU)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notebooks", metavar="DIR", help="folder with NN_*.ipynb (default: ./notebooks)")
    parser.add_argument("--out", metavar="DIR", default="build/tour", help="build folder (default: build/tour)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--timeout", type=int, default=900, metavar="S", help="per-cell timeout in seconds")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML pages")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..tour import find_notebooks, format_table, run_tour

    device = resolve_device(args.device)
    notebooks = find_notebooks(args.notebooks)
    out = Path(args.out)
    print(f"flowlab tour: {len(notebooks)} notebooks on {device} -> {out}/", file=sys.stderr)
    runs, claims = run_tour(notebooks, out, device=str(device), timeout=args.timeout,
                            html=not args.no_html, progress=not args.quiet)
    print(format_table(runs, claims))
    ok = claims and all(c.passed for c in claims) and not any(r.error for r in runs)
    if not claims:
        print("no claims were recorded: the notebooks checked nothing", file=sys.stderr)
    print(f"executed notebooks and HTML pages: {out}/index.html" if not args.no_html else f"executed notebooks: {out}/",
          file=sys.stderr)
    return 0 if ok else 1
