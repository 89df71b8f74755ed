"""``flowlab exercises``: the student notebooks, the answer key apart, and an nbgrader course folder."""
from __future__ import annotations

import argparse

from ..errors import FlowlabError

NAME = "exercises"
HELP = "write the student exercise notebooks, the answer key (--key) or an nbgrader course (--nbgrader)"
DESCRIPTION = """\
Write the student version of every solved exercise notebook (notebooks/exercises/EX_*.ipynb) into
DIR: solution blocks replaced by the stubs the students fill in, outputs removed, NOTATION.md beside
them. Each exercise ends with a check cell that answers PASS, "not done yet", or what is wrong with a
hint.

--key DIR writes the solved notebooks (the answer key) into a folder of their own; --nbgrader DIR writes
an nbgrader course folder (source/<assignment>/...) whose check cells are autograded tests, one point
each: `nbgrader generate_assignment` strips the solutions, `nbgrader autograde` grades.
Existing files are never overwritten without --force.

examples:
  flowlab exercises --list
  flowlab exercises --out handout/
  flowlab exercises --key answer-key/
  flowlab exercises --nbgrader course/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="folder for the student notebooks (created if missing)")
    parser.add_argument("--key", metavar="DIR", help="folder for the answer key: the solved notebooks, kept apart")
    parser.add_argument("--nbgrader", metavar="DIR", help="folder for an nbgrader course with autograded checks")
    parser.add_argument("--force", action="store_true", help="overwrite files already in the target folder")
    parser.add_argument("--source", metavar="DIR", default=None,
                        help="folder of the solved EX_*.ipynb notebooks (default: the tutorial's exercises/)")
    parser.add_argument("--list", action="store_true", help="list the exercises and exit")


def run(args: argparse.Namespace) -> int:
    from ..exercises import EXERCISES

    if args.list:
        for ex in EXERCISES:
            print(f"{ex.number:2d}  {ex.notebook:32s} {ex.topic}")
        return 0
    targets = [name for name in ("out", "key", "nbgrader") if getattr(args, name)]
    if not targets:
        raise FlowlabError("say what to write: --out DIR (student notebooks), --key DIR (answer key) or "
                           "--nbgrader DIR (nbgrader course); --list shows the exercises")
    if len({str(getattr(args, name)) for name in targets}) < len(targets):
        raise FlowlabError("--out, --key and --nbgrader must name different folders: the answer key never goes "
                           "into the students' folder")
    if args.out:
        from ..exercises.student import write_student_notebooks

        paths = write_student_notebooks(args.out, args.source, force=args.force)
        for path in paths:
            print(f"wrote {path}")
        print(f"{len(paths)} student notebooks, {len(EXERCISES)} exercises; no solutions in {args.out}")
    if args.key:
        from ..exercises.export import write_answer_key

        for path in write_answer_key(args.key, args.source, force=args.force):
            print(f"wrote {path}")
        print(f"answer key in {args.key}: keep it away from students")
    if args.nbgrader:
        from ..exercises.export import write_nbgrader_course

        paths = write_nbgrader_course(args.nbgrader, args.source, force=args.force)
        for path in paths:
            print(f"wrote {path}")
        print(f"nbgrader course in {args.nbgrader}: cd there, then `nbgrader generate_assignment "
              f"{paths[0].parent.name}` and `nbgrader autograde {paths[0].parent.name}`")
    return 0
