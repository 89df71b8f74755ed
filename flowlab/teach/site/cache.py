"""The tour's execution cache (jupyter-cache), keyed on the notebook and on flowlab itself.

A notebook's entry is found by jupyter-cache's hash of its code cells (and kernelspec); the entry
also records flowlab's fingerprint (its version and a hash of its package files) and the claims the
run made, so an entry is used only while neither the notebook's code nor flowlab changed, and the
tour can still print every claim without running the notebook again.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ...errors import FlowlabError

CACHE_DIR = ".jupyter_cache"
_SKIP = {"__pycache__"}


def _counts(parts: tuple[str, ...]) -> bool:
    """Whether a package file can change a notebook's outputs: everything but the site builder
    (flowlab/teach/site), whose only part inside the kernel is figure_alt.py."""
    if _SKIP & set(parts) or parts[-1].endswith((".pyc", ".mo")):
        return False
    return parts[:2] != ("teach", "site") or parts[-1] == "figure_alt.py"


def fingerprint() -> str:
    """flowlab's version and a hash of every file of the package that a notebook can run (code and
    package data; not the site's own pages, styles and translations)."""
    import flowlab
    root = Path(flowlab.__file__).resolve().parent
    h = hashlib.sha256(flowlab.__version__.encode())
    for p in sorted(root.rglob("*")):
        if p.is_file() and _counts(p.relative_to(root).parts):
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return f"{flowlab.__version__}+{h.hexdigest()[:16]}"


def _without_timings(nb: Any) -> Any:
    """A copy without the cells' execution timestamps (nbclient writes them on every run, and
    committed notebooks carry those of their last run): the key is the notebook's code."""
    import copy
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


class ExecutionCache:
    """Executed notebooks of earlier tours in ``folder`` (a jupyter-cache folder)."""

    def __init__(self, folder: Path, key: str | None = None):
        try:
            from jupyter_cache import get_cache
        except ImportError:
            raise FlowlabError("the tour's execution cache needs jupyter-cache: pip install 'flowlab[site]'") from None
        self.cache = get_cache(str(folder))
        self.key = key or fingerprint()

    def lookup(self, nb: Any) -> tuple[Any, list[dict], float] | None:
        """(executed notebook, its claims, seconds it took) from an earlier run, or None."""
        nb = _without_timings(nb)
        try:
            record = self.cache.match_cache_notebook(nb)
        except KeyError:
            return None
        data = record.data or {}
        if data.get("flowlab") != self.key:
            return None
        _, merged = self.cache.merge_match_into_notebook(nb)
        return merged, list(data.get("claims", [])), float(data.get("seconds", 0.0))

    def store(self, nb: Any, name: str, claims: list[dict], seconds: float, kernelspec: Any = None) -> None:
        """Keep a notebook that ran to the end, with the claims it made.

        ``kernelspec``: the notebook's own, as written (the kernel rewrites it while running, and the
        key is the notebook as written)."""
        from jupyter_cache.base import CacheBundleIn
        nb = _without_timings(nb)
        if kernelspec is None:
            nb.metadata.pop("kernelspec", None)
        else:
            nb.metadata["kernelspec"] = kernelspec
        bundle = CacheBundleIn(nb, uri=name, data={"flowlab": self.key, "claims": claims, "seconds": seconds})
        self.cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
