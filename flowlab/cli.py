"""The ``flowlab`` command line. Each subcommand lives in its own module under flowlab/commands/.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``;
modules are discovered, so adding a file adds a subcommand. User errors are
:class:`flowlab.errors.FlowlabError`: printed as ``flowlab NAME: error: ...``, exit status 1; a missing
optional dependency says which extra to install (``pip install 'flowlab[shape]'``), exit status 1.
Bad flags are argparse usage errors, exit status 2. A closed pipe (``flowlab derive --json | head -1``)
ends quietly with status 141. Command modules import nothing heavy at module level (torch, SymPy are
imported when a command runs), so ``--help`` is fast (benchmarks/cli_help.py).

Library code speaks library terms (``download=True``, ``dtype=torch.float32``); a command module may define
``FLAGS``, a mapping from those spellings to its own flags (``--download``, ``--dtype fp32``), and the
message it prints says the flags instead (:func:`in_flags`).
"""
from __future__ import annotations

import argparse
import importlib
import os
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


def _quiet_stdout() -> None:
    """After a closed pipe (``flowlab derive --json | head -1``): send what is left to /dev/null, so that
    Python's final flush does not print a BrokenPipeError traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured): nothing to redirect
        pass


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (0 ok, 1 a FlowlabError, 2 bad flags, 130 Ctrl-C, 141 closed pipe)."""
    command, flags = "flowlab", {}
    try:
        parser, table = build_parser()
        args = parser.parse_args(argv)
        command, flags = f"flowlab {args.command}", getattr(table[args.command], "FLAGS", {})
        status = int(table[args.command].run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return status
    except FlowlabError as exc:  # includes flowlab._optional.MissingDependency
        print(f"{command}: error: {in_flags(str(exc), flags)}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:  # an optional module imported outside flowlab._optional.require
        from ._optional import OPTIONAL, missing_message

        if (exc.name or "").split(".")[0] not in OPTIONAL:
            raise
        print(f"{command}: error: {missing_message(exc.name, None, str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a command ended by a closed pipe
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
