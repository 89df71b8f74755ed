"""``flowlab course --out DIR``: the course kit (slides, handout, lab plan) made from the tutorial."""
from __future__ import annotations

import argparse

NAME = "course"
HELP = "write the course kit: lecture slides (reveal.js), a printable handout (PDF) and a lab plan"
DESCRIPTION = """\
Write a lecturer's kit into DIR, made from the tutorial notebooks and pages themselves:

  slides/lecture.html   the 90-minute lecture (reveal.js, offline): the cells tagged 'slide'
  handout.pdf / .html   symbols, the two conventions and their map, three misconceptions, the exercises
                        (the PDF needs a Chromium: chromium, chromium-browser or $FLOWLAB_CHROMIUM)
  LAB_PLAN.md           two 2-hour lab meetings whose slots add up
  README.md             what is in the kit

Student notebooks, the answer key and an nbgrader folder come from `flowlab exercises`.
An existing kit in DIR is never overwritten without --force.

examples:
  flowlab course --out kit/
  flowlab course --out kit/ --force
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", required=True, help="folder for the kit (created if missing)")
    parser.add_argument("--force", action="store_true", help="overwrite a kit already in DIR")


def run(args: argparse.Namespace) -> int:
    from ..teach.course import write_course

    for path in write_course(args.out, force=args.force):
        print(f"wrote {path}")
    return 0
