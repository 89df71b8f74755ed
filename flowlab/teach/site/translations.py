"""The Chinese edition's catalogs: which pages are translated, extracting their messages, checking them.

Sphinx's gettext builder extracts every translatable message of the site's sources into ``.pot``
templates; ``sphinx-intl update`` merges them into ``locale/zh_CN/LC_MESSAGES/<page>.po``, where the
translations are written by hand. :func:`check_catalogs` reports, for every translated page, each
message without a translation, each fuzzy one (its English changed since it was translated), each
obsolete one (its English is gone) and each translation of a message the page no longer has.
``python tools/update_translations.py`` runs the extraction and the merge.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ...errors import FlowlabError
from ...resources import notebooks_dir

LANG = "zh_CN"
TRANSLATED = ("index", "NOTATION", "LECTURERS_GUIDE", "01_reversed_time_and_issue_124")


def extract_messages(pot_dir: Path, source: Path | None = None) -> Path:
    """Write the ``.pot`` templates of the site's sources (the stored notebooks, as the tour lays them out)."""
    from . import SRC, prepare_sources, run_sphinx
    from ..tour import find_notebooks
    source = source or notebooks_dir()
    work = Path(tempfile.mkdtemp(prefix="flowlab-gettext-"))
    src = prepare_sources(work, source, find_notebooks(source))
    assert src == work / SRC
    run_sphinx(src, [(pot_dir, work / "doctrees", "en")], builder="gettext")
    return pot_dir


def _entries(path: Path) -> list:
    try:
        from babel.messages.pofile import read_po
    except ImportError:
        raise FlowlabError("checking the translations needs babel (pip install 'flowlab[site]')") from None
    with open(path, "rb") as fh:
        return read_po(fh)


def check_catalogs(pot_dir: Path, locale_dir: Path, pages: tuple[str, ...] = TRANSLATED) -> list[str]:
    """Every problem of the translated pages' catalogs, one line each (empty when all are complete)."""
    problems = []
    for page in pages:
        pot, po = pot_dir / f"{page}.pot", locale_dir / LANG / "LC_MESSAGES" / f"{page}.po"
        if not pot.is_file():
            problems.append(f"{page}: the site has no such page (no {pot.name})")
            continue
        if not po.is_file():
            problems.append(f"{page}: no catalog {po}")
            continue
        wanted = {m.id for m in _entries(pot) if m.id}
        catalog = _entries(po)
        have = {}
        for m in catalog:
            if m.id:
                have[m.id] = m
        for msgid in sorted(wanted - set(have)):
            problems.append(f"{page}: untranslated (not in the catalog): {msgid[:80]!r}")
        for msgid, m in have.items():
            if msgid not in wanted:
                problems.append(f"{page}: stale (the page no longer says this): {msgid[:80]!r}")
            elif not m.string:
                problems.append(f"{page}: untranslated: {msgid[:80]!r}")
            elif m.fuzzy:
                problems.append(f"{page}: fuzzy (the English changed since it was translated): {msgid[:80]!r}")
        for m in catalog.obsolete.values():
            problems.append(f"{page}: obsolete entry: {str(m.id)[:80]!r}")
    return problems
