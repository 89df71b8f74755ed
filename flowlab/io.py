"""Atomic file output: a file is either written whole or not at all."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import FlowlabError

__all__ = ["write_atomic"]


def write_atomic(path: str | Path, content: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` (bytes, text, or a function that writes to a binary file) to ``path``.

    The data goes to a temporary file in the same folder, which is renamed over ``path`` only once
    it is complete; on any failure the temporary file is removed and ``path`` is left untouched.
    OS errors become a :class:`FlowlabError` that names the path.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FlowlabError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist; create it first")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise FlowlabError(f"cannot write {str(path)!r}: {exc.strerror}; choose a writable path") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise FlowlabError(f"cannot write {str(path)!r}: {exc.strerror or exc}; choose a writable path") from None
        raise
    return path
