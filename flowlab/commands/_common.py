"""What several commands share: the ``--out`` checks and the common flags (``--seed``, ``--device``, ``--yes``).

Every command that writes a file checks its ``--out`` with :func:`check_out_file` BEFORE any work, so a bad
path is refused in a second, not after an hour of sampling: the suffix, the folder (exists, writable), a
directory / device / FIFO / socket in the way (also behind a symbolic link), a name longer than the file
system allows. A command that writes a folder of files checks it with :func:`check_out_dir` and each file in
it with :func:`check_member`, which refuses a symbolic link that leads out of the folder. The write itself is
:func:`flowlab.io.write_atomic`, which applies the same refusals again at the last moment.

Work that is merely long (not impossible) is bounded by :func:`check_work`: an estimate from a rate measured
on this machine class, refused beyond :data:`WORK_LIMIT_SECONDS` unless the user passed ``--yes``.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Iterable

from ..errors import FlowlabError
from ..io import check_member as io_check_member
from ..io import check_writable_target
from ..limits import SEED_MAX

__all__ = ["check_out_file", "check_out_dir", "check_member", "add_seed", "add_device", "add_yes", "check_work",
           "WORK_LIMIT_SECONDS", "human_seconds"]

#: Work estimated to take longer than this (seconds) needs ``--yes`` (one hour).
WORK_LIMIT_SECONDS = 3600.0


def _label(flag: str, path: str | Path) -> str:
    return f"{flag} {str(path)!r}"


def check_out_file(path: str | Path | None, suffixes: Iterable[str], *, flag: str = "--out",
                   example: str = "", kind: str = "unsupported file type") -> Path | None:
    """``path`` as a Path once it is a file flowlab may write; ``None`` stays ``None``.

    ``suffixes``: the accepted endings (``(".npz", ".png")``), compared case-insensitively; empty accepts any.
    ``kind`` starts the message for another ending (``"unknown mesh format"``).
    """
    if path is None:
        return None
    out = Path(path)
    label = _label(flag, path)
    suffixes = tuple(s.lower() for s in suffixes)
    names = " or ".join(suffixes)
    try:
        target = check_writable_target(out, label)
    except FlowlabError as exc:
        if "is a directory" in str(exc):
            raise FlowlabError(f"{label} is a directory; give a file name"
                               + (f" ending in {names}" if names else "") + (f", such as {example}" if example else ""))
        raise
    if suffixes and out.suffix.lower() not in suffixes:
        raise FlowlabError(f"{label}: {kind} {out.suffix or '(none)'!r}; use {names}")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        via = f" (the target of the link {str(out)!r})" if target != out else ""
        raise FlowlabError(f"{label}: folder {str(folder)!r}{via} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise FlowlabError(f"{label} is not writable; choose another path")
    return out


def check_out_dir(path: str | Path, *, flag: str = "--out", create: bool = True) -> Path:
    """A folder flowlab writes files into: not a file / device, its parent exists, writable. Created if asked."""
    out = Path(path)
    label = _label(flag, path)
    if len(out.name.encode("utf-8", "surrogateescape")) > 255:
        raise FlowlabError(f"{label}: the folder name is longer than the file system allows; use a shorter name")
    try:
        exists = out.exists()
        is_dir = out.is_dir()
    except OSError as exc:
        raise FlowlabError(f"{label}: {exc.strerror}; choose another folder") from None
    if exists and not is_dir:
        raise FlowlabError(f"{label} exists and is not a folder; give a folder name")
    if not exists:
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise FlowlabError(f"{label}: folder {str(parent)!r} does not exist; create it first")
        if create:
            try:
                out.mkdir()
            except FileExistsError:
                pass
            except OSError as exc:
                raise FlowlabError(f"{label}: cannot create the folder ({exc.strerror}); choose another path") from None
    elif not os.access(out, os.W_OK | os.X_OK):
        raise FlowlabError(f"{label} is not writable; choose another folder")
    return out


def check_member(folder: Path, name: str, *, flag: str = "--out", force: bool = False) -> Path:
    """``folder / name`` once a command may write it (see :func:`flowlab.io.check_member`)."""
    return io_check_member(folder, name, label=_label(flag, folder), force=force)


def add_seed(p: argparse.ArgumentParser, default: int = 0, what: str = "the noise") -> None:
    p.add_argument("--seed", type=int, default=default, help=f"seed for {what}, 0 .. 2**64 - 1 (= {SEED_MAX}) "
                   f"(default {default})")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA if present)")


def add_yes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help=f"run work estimated to take longer than "
                   f"{human_seconds(WORK_LIMIT_SECONDS)} (refused without it)")


def human_seconds(s: float) -> str:
    """``5400 -> '1.5 h'``."""
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


#: Environment variable that replaces :data:`WORK_LIMIT_SECONDS` (seconds), e.g. a shorter limit on a CI machine.
WORK_LIMIT_ENV = "FLOWLAB_WORK_LIMIT_SECONDS"


def work_limit(default: float = WORK_LIMIT_SECONDS) -> float:
    """The work limit: ``$FLOWLAB_WORK_LIMIT_SECONDS`` when set (a positive number), else ``default``."""
    raw = os.environ.get(WORK_LIMIT_ENV)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise FlowlabError(f"${WORK_LIMIT_ENV} = {raw!r} is not a positive number of seconds; unset it or give e.g. 600")
    return value


def check_work(seconds: float, what: str, hint: str, *, yes: bool = False,
               limit: float | None = None) -> None:
    """Refuse work estimated at ``seconds`` beyond ``limit`` (default :func:`work_limit`) unless ``yes`` (``--yes``)."""
    limit = work_limit() if limit is None else limit
    if seconds > limit and not yes:
        raise FlowlabError(f"{what} would take about {human_seconds(seconds)} on this machine (estimate), more "
                           f"than the {human_seconds(limit)} flowlab runs without asking; {hint}, or pass --yes "
                           "to run it anyway")
