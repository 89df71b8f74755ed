"""``flowlab exercises --out DIR``: write the student notebooks (solutions stripped)."""
from __future__ import annotations

import argparse

from ..errors import FlowlabError

NAME = "exercises"
HELP = "write the student exercise notebooks (solutions replaced by stubs) into a folder"
DESCRIPTION = """\
Write the student version of every solved exercise notebook (notebooks/exercises/EX_*.ipynb) into
DIR: solution blocks replaced by the stubs the students fill in, outputs removed. Each exercise
ends with a check cell that answers PASS, "not done yet", or what is wrong with a hint.

Existing files are never overwritten without --force.

examples:
  flowlab exercises --list
  flowlab exercises --out handout/
  flowlab exercises --out handout/ --force
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="folder for the student notebooks (created if missing)")
    parser.add_argument("--force", action="store_true", help="overwrite student notebooks already in DIR")
    parser.add_argument("--source", metavar="DIR", default=None,
                        help="folder of the solved EX_*.ipynb notebooks (default: notebooks/exercises)")
    parser.add_argument("--list", action="store_true", help="list the exercises and exit")


def run(args: argparse.Namespace) -> int:
    from ..exercises import EXERCISES
    from ..exercises.student import write_student_notebooks

    if args.list:
        for ex in EXERCISES:
            print(f"{ex.number:2d}  {ex.notebook:32s} {ex.topic}")
        return 0
    if not args.out:
        raise FlowlabError("say where to write the student notebooks: --out DIR (or --list to see the exercises)")
    paths = write_student_notebooks(args.out, args.source, force=args.force)
    for path in paths:
        print(f"wrote {path}")
    print(f"{len(paths)} student notebooks, {len(EXERCISES)} exercises; solutions stay in notebooks/exercises/")
    return 0
