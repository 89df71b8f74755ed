"""The Chinese edition: every translated page's catalog is complete and current.

`check_catalogs` compares the messages Sphinx extracts from the site's sources today (gettext
builder) with the hand-written catalogs in flowlab/teach/site/locale/zh_CN: a message without a
translation, a fuzzy one (its English changed), an obsolete one, or a translation of a sentence the
page no longer has fails the test. Fix with `python tools/update_translations.py`, then translate.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from flowlab.teach.site import LOCALE
from flowlab.teach.site.translations import LANG, TRANSLATED, check_catalogs, extract_messages


def _po(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
    path.write_text(head + textwrap.dedent(body), encoding="utf-8")


@pytest.mark.slow
def test_every_translated_page_is_complete_and_current(tmp_path: Path) -> None:
    pot = extract_messages(tmp_path / "pot")
    assert {p.stem for p in pot.glob("*.pot")} >= set(TRANSLATED)
    problems = check_catalogs(pot, LOCALE)
    assert not problems, "\n".join(problems[:40]) + "\nrun python tools/update_translations.py and translate"
    # the notation page really is in Chinese: most of its messages differ from the English
    from babel.messages.pofile import read_po
    with open(LOCALE / LANG / "LC_MESSAGES" / "NOTATION.po", "rb") as fh:
        cat = read_po(fh)
    prose = [m for m in cat if m.id and len(re.findall(r"[A-Za-z]{3,}", re.sub(r"\$[^$]*\$|`[^`]*`", "", m.id))) >= 3]
    assert len(prose) > 20 and all(m.string != m.id and re.search(r"[\u4e00-\u9fff]", m.string) for m in prose), \
        [m.id for m in prose if not re.search(r"[\u4e00-\u9fff]", m.string)]


def test_untranslated_fuzzy_obsolete_and_stale_entries_are_each_reported(tmp_path: Path) -> None:
    pot, locale = tmp_path / "pot", tmp_path / "locale"
    _po(pot / "page.pot", '''\
        msgid "Kept sentence."
        msgstr ""

        msgid "New sentence."
        msgstr ""

        msgid "Changed sentence, new wording."
        msgstr ""

        msgid "Left empty."
        msgstr ""
        ''')
    _po(locale / LANG / "LC_MESSAGES" / "page.po", '''\
        msgid "Kept sentence."
        msgstr "保留的句子。"

        #, fuzzy
        msgid "Changed sentence, new wording."
        msgstr "改过的句子。"

        msgid "Left empty."
        msgstr ""

        msgid "A sentence the page dropped."
        msgstr "页面已删掉的句子。"

        #~ msgid "Old sentence."
        #~ msgstr "旧句子。"
        ''')
    problems = check_catalogs(pot, locale, pages=("page", "missing"))
    text = "\n".join(problems)
    assert "page: untranslated (not in the catalog): 'New sentence.'" in text
    assert "page: fuzzy (the English changed since it was translated): 'Changed sentence, new wording.'" in text
    assert "page: untranslated: 'Left empty.'" in text
    assert "page: stale (the page no longer says this): 'A sentence the page dropped.'" in text
    assert "page: obsolete entry: 'Old sentence.'" in text
    assert "missing: the site has no such page" in text
    assert not any("Kept sentence" in p for p in problems)
    assert len(problems) == 6, problems
