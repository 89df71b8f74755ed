"""The command line's manners: every flag explains itself, --help imports no torch or SymPy (the time
is measured in benchmarks/cli_help.py), a closed pipe ends quietly."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from flowlab.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    return sorted(build_parser()[1])


def flags_without_help(parser: argparse.ArgumentParser, path: str = "flowlab") -> list[str]:
    """``path --flag`` for every option or positional of ``parser`` and its subcommands that has no help text
    (argparse.SUPPRESS, a deliberately hidden flag, counts as having one)."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not (helps.get(name) or "").strip():
                    missing.append(f"{path} {name} (the command itself)")
                missing += flags_without_help(sub, f"{path} {name}")
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) and action.help:
            continue
        if action.help is argparse.SUPPRESS:
            continue
        if not (action.help or "").strip():
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_flag_of_every_command_has_help() -> None:
    parser, table = build_parser()
    assert len(table) >= 10
    assert flags_without_help(parser) == []


def test_the_walk_finds_a_flag_without_help() -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--good", help="fine")
    sub = parser.add_subparsers(dest="cmd")
    p = sub.add_parser("run", help="run it")
    p.add_argument("--bad")
    p.add_argument("--empty", help=" ")
    p.add_argument("--hidden", help=argparse.SUPPRESS)
    sub.add_parser("quiet")
    assert flags_without_help(parser, "x") == ["x run --bad", "x run --empty", "x quiet (the command itself)"]


def test_help_names_match_the_library() -> None:
    """sample's --help lists toys, methods and conventions from constants (no torch for --help)."""
    from flowlab.commands import sample
    from flowlab.conventions import CONVENTIONS
    from flowlab.sampling import METHODS
    from flowlab.toys import TOYS

    assert tuple(sample.TOY_NAMES) == tuple(TOYS)
    assert tuple(sample.METHOD_NAMES) == tuple(METHODS)
    assert tuple(sample.CONVENTION_NAMES) == tuple(CONVENTIONS)


def test_derive_choices_match_the_conventions() -> None:
    from flowlab.commands import derive
    from flowlab.conventions import CONVENTIONAL, REVERSED

    assert derive.CHOICES == (CONVENTIONAL.name, REVERSED.name, "both")


def test_check_help_names_match_the_library() -> None:
    from flowlab.commands import check
    from flowlab.conventions import CONVENTIONS
    from flowlab.testing._exact import SIGNATURES

    assert check._STRAIGHT == tuple(name for name, conv in CONVENTIONS.items() if conv.is_straight)
    assert check.SIGNATURES == tuple(SIGNATURES)


def test_shape_help_names_match_the_pipeline() -> None:
    from flowlab.commands import shape
    from flowlab.shape.pipeline import DECODE_MODES, SAMPLING_CONVENTIONS

    assert shape.DECODE_MODES == DECODE_MODES
    assert shape.SAMPLING_CONVENTION_NAMES == tuple(c.name for c in SAMPLING_CONVENTIONS)


_HEAVY = ("torch", "sympy", "numpy", "matplotlib", "nbformat", "nbclient", "scipy", "transformers", "diffusers")


@pytest.mark.parametrize("command", [None, *_commands()])
def test_help_imports_nothing_heavy(command: str | None) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    code = ("import sys\nfrom flowlab.cli import main\ntry:\n    main(%r)\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = [m for m in %r if m in sys.modules]\nprint('HEAVY', heavy, 'CODE', code, file=sys.stderr)") % (
        argv, _HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY [] CODE 0" in proc.stderr, proc.stderr[-2000:]
    assert "usage: flowlab" in proc.stdout


@pytest.mark.parametrize("argv", [["derive", "--json"], ["derive"], ["notebooks", "--list"], ["--help"]])
def test_a_closed_pipe_ends_quietly(argv: list[str], tmp_path: Path) -> None:
    """The reader is gone before the first write (as with ``| head -1`` on long output): no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "flowlab.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode in (0, 141), (proc.returncode, text)
    assert "Traceback" not in text and "BrokenPipeError" not in text, text


def test_a_closed_pipe_in_a_shell_pipeline(tmp_path: Path) -> None:
    out = subprocess.run(["bash", "-c", f"{sys.executable} -m flowlab.cli derive --json | head -1; "
                          "echo \"status ${PIPESTATUS[0]}\" >&2"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.stdout.strip() == "{"
    assert out.stderr.strip().splitlines()[-1] in ("status 0", "status 141"), out.stderr
    assert "Traceback" not in out.stderr
