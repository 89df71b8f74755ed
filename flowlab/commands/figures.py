"""``flowlab figures``: write the key teaching figures, one file each, and an index.

Each figure is named after its entry in ``flowlab.teach.figures.REGISTRY`` (``segment_jumps.png``,
``time_axes.png``, ...); ``index.md`` says what each one shows and which notebook explains it.
The data are small and computed on the spot (exact Gaussian-mixture velocities, a 300-step training
run): the whole set takes a few seconds on one CPU core. Every file is written atomically.
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

from ..errors import FlowlabError

NAME = "figures"
HELP = "write the key teaching figures (segment_jumps, time_axes, ...) to a folder, with an index.md"
DESCRIPTION = __doc__
FORMATS = ("png", "svg", "pdf")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder to write into (created if missing; existing figures of the same name are replaced)")
    p.add_argument("--format", default="png", choices=FORMATS, help="file format (default: png)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="write only these figures (default: all); names as in index.md")
    p.add_argument("--dpi", type=int, default=150, help="resolution of png files (default: 150)")


def _check_out(path: str) -> Path:
    from ._common import check_out_dir

    return check_out_dir(path)


def _watch_interrupts() -> list:
    """Remember every Ctrl-C (SIGINT) in a list; the figure loop stops at the next figure. Raising from the handler
    instead could land inside a finaliser of matplotlib's, which swallows it with an "Exception ignored"
    traceback and lets the command carry on."""
    import signal
    import threading

    seen: list = []
    if threading.current_thread() is not threading.main_thread():
        return seen
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # SIGINT ignored (a background job) or handled by the caller
        return seen

    def on_int(signum, frame):  # noqa: ARG001
        seen.append(signum)

    signal.signal(signal.SIGINT, on_int)
    return seen


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    from ..teach import figures
    from ..io import write_atomic

    if not isinstance(args.dpi, int) or not 30 <= args.dpi <= 600:
        raise FlowlabError(f"--dpi must be an integer from 30 to 600, got {args.dpi!r}")
    names = list(figures.REGISTRY)
    if args.only:
        unknown = [n for n in args.only if n not in figures.REGISTRY]
        if unknown:
            raise FlowlabError(f"unknown figure(s) {', '.join(unknown)}; figures: {', '.join(names)}")
        names = [n for n in names if n in args.only]
    out = _check_out(args.out)
    lines = ["# flowlab figures", "",
             f"Written by `flowlab figures --out {args.out} --format {args.format}`. Names match "
             "`flowlab.teach.figures.REGISTRY`; each notebook draws the same figure with its own data.", "",
             "| file | notebook | what it shows |", "|---|---|---|"]
    interrupted = _watch_interrupts()
    for name in names:
        if interrupted:  # Ctrl-C: stop before the next figure
            raise KeyboardInterrupt
        spec = figures.REGISTRY[name]
        fig = spec.build()
        buf = io.BytesIO()
        try:
            fig.savefig(buf, format=args.format, dpi=args.dpi, bbox_inches="tight",
                        metadata={"Software": None} if args.format == "png" else None)
        finally:
            plt.close(fig)
        path = write_atomic(out / f"{name}.{args.format}", buf.getvalue())
        lines.append(f"| [{path.name}]({path.name}) | {spec.notebook} | {spec.shows} |")
        print(f"wrote {path}")
    if interrupted:
        raise KeyboardInterrupt
    index = write_atomic(out / "index.md", "\n".join(lines) + "\n")
    print(f"wrote {index}")
    return 0
