"""``flowlab notebooks --out DIR``: copy the tutorial that ships with flowlab into a folder, for editing."""
from __future__ import annotations

import argparse

from ..errors import FlowlabError

NAME = "notebooks"
HELP = "copy the tutorial notebooks (and NOTATION, the lecturer's guide, the solved exercises) into a folder"
DESCRIPTION = """\
Copy the tutorial that ships with flowlab (the numbered notebooks, exercises/EX_*.ipynb, NOTATION.md,
LECTURERS_GUIDE.md and nbval's sanitize.cfg) into DIR, so that you can open, edit and re-run it:

  flowlab notebooks --out my-notebooks
  cd my-notebooks && jupyter lab          # start with NOTATION.md, then 01_...
  flowlab tour --notebooks my-notebooks   # run them all and check every claim

Existing files are never overwritten without --force; a symbolic link as DIR or as one of the files
is refused (even with --force). --list prints what would be copied and from where.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="folder to copy the tutorial into (created if missing)")
    parser.add_argument("--force", action="store_true", help="overwrite files already in DIR (your edits there are lost)")
    parser.add_argument("--list", action="store_true", help="list the tutorial's files and where they are, then exit")


def run(args: argparse.Namespace) -> int:
    from ..resources import copy_tutorial, notebooks_dir, tutorial_files

    if args.list:
        source = notebooks_dir()
        print(f"flowlab's tutorial: {source}")
        for rel in tutorial_files(source):
            print(f"  {rel.as_posix()}")
        return 0
    if not args.out:
        raise FlowlabError("say where to copy the tutorial: --out DIR (or --list to see what it holds)")
    written = copy_tutorial(args.out, force=args.force)
    n_nb = sum(1 for p in written if p.suffix == ".ipynb")
    print(f"copied {len(written)} files ({n_nb} notebooks) into {args.out}/; open {args.out}/NOTATION.md first, "
          f"then run them with `flowlab tour --notebooks {args.out}`")
    return 0
