"""Extract the site's messages and merge them into the Chinese catalogs (sphinx-intl).

    python tools/update_translations.py         # update flowlab/teach/site/locale/zh_CN/LC_MESSAGES/*.po
    python tools/update_translations.py --check # list what is untranslated, fuzzy or stale

After an update, translate every entry with an empty msgstr and every `#, fuzzy` one (then remove the
flag), and delete the `#~` obsolete entries; tests/test_translations.py fails until that is done.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from flowlab.teach.site import LOCALE
from flowlab.teach.site.translations import LANG, TRANSLATED, check_catalogs, extract_messages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report, change nothing")
    args = parser.parse_args()
    pot = Path(tempfile.mkdtemp(prefix="flowlab-pot-"))
    extract_messages(pot)
    if not args.check:  # only the translated pages get a catalog; the others show in English
        chosen = Path(tempfile.mkdtemp(prefix="flowlab-pot-chosen-"))
        for page in TRANSLATED:
            shutil.copy(pot / f"{page}.pot", chosen / f"{page}.pot")
        subprocess.run([sys.executable, "-m", "sphinx_intl", "update", "-p", str(chosen), "-d", str(LOCALE),
                        "-l", LANG, "-w", "0"], check=True)
    problems = check_catalogs(pot, LOCALE)
    print("\n".join(problems) or "every translated page is complete")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
