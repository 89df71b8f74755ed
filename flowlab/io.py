"""Atomic file output: a file is either written whole or not at all.

How files come out (what users expect from ``cp`` or an editor):

* a new file gets the permissions the umask allows (``0666 & ~umask``, e.g. 0644), not the
  private 0600 of a temporary file;
* overwriting keeps the existing file's permission bits;
* a path that is a symbolic link is written THROUGH to its target: the link stays a link and
  the file it points to gets the new content (a dangling link creates its target);
* on failure, Ctrl-C (SIGINT) or SIGTERM the temporary ``.NAME.PID.*.tmp`` file is removed and the
  destination is left untouched (SIGTERM then ends the process with status 143, as the default
  action would); a temporary file left by a process that was killed outright (SIGKILL, power loss)
  is removed by the next write of the same name once its process is gone;
* only regular files are replaced: a path (or a link's target) that is a device, a FIFO or a socket is
  refused, so ``--out /dev/null`` or a link to a device never turns the device node into a file;
* a file name too long for the file system is refused with a clear message (the temporary name is
  the file name plus about 20 characters).
"""
from __future__ import annotations

import errno
import os
import re
import signal
import stat
import tempfile
import time
import threading
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import FlowlabError

__all__ = ["write_atomic", "current_umask", "resolve_target", "check_writable_target", "remove_stale_temporaries",
           "check_member"]

#: Longest file name the temporary name leaves room for (NAME_MAX 255 minus ``.``, ``.PID.``, 8 random, ``.tmp``).
MAX_NAME_BYTES = 255 - 32
#: A temporary file of the old naming (no PID) older than this is stale.
STALE_SECONDS = 24 * 3600


def current_umask() -> int:
    """The process umask, read without changing it where Linux exposes it (/proc/self/status)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # fallback: read by setting and restoring
    os.umask(mask)
    return mask


def resolve_target(path: str | Path) -> Path:
    """The file a write to ``path`` should replace: ``path`` itself, or the final target of a symbolic link."""
    path = Path(path)
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


def check_writable_target(path: str | Path, label: str | None = None) -> Path:
    """The file a write to ``path`` replaces, after refusing what :func:`write_atomic` must never replace.

    Refused with a :class:`FlowlabError` (``label`` names the path in the message, e.g. ``"--out 'x.npz'"``):
    a directory, a device / FIFO / socket (also behind a symbolic link), a link loop, a file name longer
    than the file system allows. Returns the resolved target (see :func:`resolve_target`).
    """
    given = Path(path)
    label = label or repr(str(given))
    if len(given.name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise FlowlabError(f"{label}: the file name is {len(given.name.encode('utf-8', 'surrogateescape'))} bytes "
                           f"long, more than the {MAX_NAME_BYTES} flowlab can write (the file system allows 255 and the temporary name adds up to 32); use a shorter name")
    try:
        target = resolve_target(given)
        st = os.stat(target)
    except FileNotFoundError:
        return resolve_target(given)
    except OSError as exc:
        why = {errno.ENAMETOOLONG: "the path is longer than the file system allows; use a shorter path",
               errno.ELOOP: "the symbolic links form a loop; point --out at a file"}.get(
            exc.errno, f"{exc.strerror}; choose another path")
        raise FlowlabError(f"{label}: {why}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FlowlabError(f"{label} is a directory; give a file name")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
                else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "not a regular file")
        via = f" (the target of the link {str(given)!r})" if target != given else ""
        raise FlowlabError(f"{label}: {str(target)!r}{via} is {kind}; flowlab writes only regular files, "
                           "so give the path of a file")
    return target


def check_member(folder: str | Path, name: str, *, label: str | None = None, force: bool = False) -> Path:
    """The path ``folder / name`` that a writer of several files into ``folder`` may replace.

    Refused (``label`` names the folder in the message): a symbolic link that leads out of ``folder`` (a
    writer never follows a link to a file elsewhere, ``force`` or not), an existing file or link without
    ``force``, a read-only file, and whatever :func:`check_writable_target` refuses.
    """
    folder = Path(folder)
    path = folder / name
    label = label or repr(str(folder))
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if Path(os.path.realpath(folder)) not in target.parents:
            raise FlowlabError(f"{label}: {name} is a symbolic link to {str(target)!r}, outside the folder; "
                               "flowlab does not write through it: remove the link or choose another folder")
    if (path.exists() or path.is_symlink()) and not force:
        raise FlowlabError(f"{label}: {name} exists; pass --force to overwrite it")
    target = check_writable_target(path, f"{label}: {name}")
    if target.exists() and not os.access(target, os.W_OK):
        raise FlowlabError(f"{label}: {name} is read-only; make it writable or choose another folder")
    return path


_TMP_PID = re.compile(r"\.(\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Remove the temporary files of :func:`write_atomic` for ``target`` that no running process owns.

    Only names of flowlab's own pattern, ``.NAME.PID.RANDOM.tmp`` in ``target``'s folder, are touched: one
    whose PID is no longer running (a writer killed by SIGKILL), and one of the older pattern without a PID
    (``.NAME.RANDOM.tmp``) older than :data:`STALE_SECONDS`. Returns the removed paths.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    prefix = f".{target.name}."
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")) or not entry.is_file(follow_symlinks=False):
            continue
        rest = name[len(prefix) - 1:]
        m = _TMP_PID.fullmatch(rest)
        try:
            if m:
                stale = int(m.group(1)) != os.getpid() and not _alive(int(m.group(1)))
            else:
                stale = "." not in rest[1:-4] and time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except (OSError, ValueError):
            continue
    return removed


class _Terminated(BaseException):
    """Raised inside write_atomic when SIGTERM arrives, so the cleanup below runs."""


def write_atomic(path: str | Path, content: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` (bytes, text, or a function that writes to a binary file) to ``path``.

    The data goes to a temporary file in the same folder, which is renamed over ``path`` only once
    it is complete; on any failure (or SIGINT / SIGTERM) the temporary file is removed and ``path`` is
    left untouched. Permissions and symbolic links: see the module docstring. OS errors become a
    :class:`FlowlabError` that names the path. Returns ``path`` as given.
    """
    given = Path(path)
    target = check_writable_target(given, f"cannot write {str(given)!r}")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        where = f" (the target of the link {str(given)!r})" if target != given else ""
        raise FlowlabError(f"cannot write {str(target)!r}{where}: folder {str(folder)!r} does not exist; create it first")
    remove_stale_temporaries(target)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    except OSError as exc:
        raise FlowlabError(f"cannot write {str(target)!r}: {exc.strerror}; choose a writable path") from None

    installed, previous = False, None
    if threading.current_thread() is threading.main_thread():
        def _on_term(signum, frame):  # noqa: ARG001
            raise _Terminated()
        try:
            previous = signal.signal(signal.SIGTERM, _on_term)
            installed = True
        except (ValueError, OSError):  # pragma: no cover - signals unavailable
            pass
    try:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
        except OSError as exc:
            raise FlowlabError(f"cannot write {str(target)!r}: {exc.strerror}; choose a writable path") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                if callable(content):
                    content(fh)
                else:
                    fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, _Terminated):
                raise SystemExit(128 + signal.SIGTERM) from None
            if isinstance(exc, OSError):
                raise FlowlabError(f"cannot write {str(target)!r}: {exc.strerror or exc}; choose a writable path") \
                    from None
            raise
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    return given
