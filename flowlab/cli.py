"""The ``flowlab`` command line. Each subcommand lives in its own module under flowlab/commands/.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
modules are discovered, so adding a file adds a subcommand. User errors are
:class:`flowlab.errors.FlowlabError`: printed as ``flowlab NAME: error: ...``, exit status 1.
Bad flags are argparse usage errors, exit status 2.

Library code speaks library terms (``download=True``, ``dtype=torch.float32``); a command module may define
``FLAGS``, a mapping from those spellings to its own flags (``--download``, ``--dtype fp32``), and the
message it prints says the flags instead (:func:`in_flags`).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from . import __version__, commands
from .errors import FlowlabError


def _command_modules() -> list[ModuleType]:
    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if all(hasattr(mod, attr) for attr in ("NAME", "HELP", "add_arguments", "run")):
            mods.append(mod)
    return mods


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(
        prog="flowlab",
        description="Diffusion and flow-matching timestep conventions, derived, sampled and verified.")
    parser.add_argument("--version", action="version", version=f"flowlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    table = {}
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        table[mod.NAME] = mod
    return parser, table


def in_flags(message: str, flags: dict[str, str]) -> str:
    """``message`` with each library spelling in ``flags`` replaced by the command's flag (longest first)."""
    for lib in sorted(flags, key=len, reverse=True):
        message = message.replace(lib, flags[lib])
    return message


def main(argv: list[str] | None = None) -> int:
    parser, table = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(table[args.command].run(args) or 0)
    except FlowlabError as exc:
        message = in_flags(str(exc), getattr(table[args.command], "FLAGS", {}))
        print(f"flowlab {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"flowlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
