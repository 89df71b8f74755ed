"""Atomic file output: a file is either written whole or not at all.

How files come out (what users expect from ``cp`` or an editor):

* a new file gets the permissions the umask allows (``0666 & ~umask``, e.g. 0644), not the
  private 0600 of a temporary file;
* overwriting keeps the existing file's permission bits;
* a path that is a symbolic link is written THROUGH to its target: the link stays a link and
  the file it points to gets the new content (a dangling link creates its target);
* on failure, Ctrl-C (SIGINT) or SIGTERM the temporary ``.NAME.*.tmp`` file is removed and the
  destination is left untouched (SIGTERM then ends the process with status 143, as the default
  action would).
"""
from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import FlowlabError

__all__ = ["write_atomic", "current_umask", "resolve_target"]


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
    target = resolve_target(given)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        where = f" (the target of the link {str(given)!r})" if target != given else ""
        raise FlowlabError(f"cannot write {str(target)!r}{where}: folder {str(folder)!r} does not exist; create it first")
    if target.is_dir():
        raise FlowlabError(f"cannot write {str(target)!r}: it is a directory; give a file name")
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
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
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
