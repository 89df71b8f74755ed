"""Sphinx configuration of the tour's site (``flowlab tour`` builds it; see :mod:`flowlab.teach.site`).

The tour executes the notebooks itself (claims, Ctrl-C, its own cache), so MyST-NB renders the
executed copies as they are (``nb_execution_mode = "off"``). Per-build values (the language, the
link to the other edition) come in through ``confoverrides`` and ``html_context``.
"""
from __future__ import annotations

import re
from pathlib import Path

project = "flowlab"
author = "flowlab contributors"
copyright = "flowlab contributors, MIT License"
# read, not imported: importing flowlab imports torch, seconds a build with nothing to do should not spend
version = release = re.search(r'__version__ = "([^"]+)"',
                              (Path(__file__).resolve().parents[2] / "__init__.py").read_text()).group(1)

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
templates_path = ["_templates"]
exclude_patterns = ["_build", "locale", "**.ipynb_checkpoints", "README.md"]
root_doc = "index"

# MyST / MyST-NB: $...$ and $$...$$ math, heading ids for "on this page" and #anchors
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_update_mathjax = False  # static/mathjax-config.js is the one MathJax configuration
nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "remove"

# MathJax 3 from the vendored copy in _static/mathjax (no CDN): works from file://
html_static_path = ["static"]
mathjax_path = "mathjax/tex-svg-full.js"
mathjax3_config = None  # static/mathjax-config.js configures MathJax (it marks the page when typeset)
html_js_files = [("mathjax-config.js", {"priority": 100})]

html_theme = "sphinx_book_theme"
html_context = {"default_mode": "light"}  # an explicit mode: file:// pages have no stored one
html_title = "flowlab"
html_css_files = ["flowlab.css"]
html_copy_source = True
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "article_header_end": ["langswitch.html", "article-header-buttons.html"],
    "home_page_in_toc": True,
}
html_sidebars = {"**": ["navbar-logo.html", "search-field.html", "sbt-sidebar-nav.html"]}

# API reference from docstrings
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
add_module_names = False
suppress_warnings = ["myst.header", "myst.xref_missing", "mystnb.unknown_mime_type", "misc.highlighting_failure"]

# translations (sphinx-intl): locale/<lang>/LC_MESSAGES/<doc>.po, copied into the source folder
locale_dirs = ["locale"]
gettext_compact = False
gettext_uuid = False
gettext_location = False
napoleon_use_ivar = True  # dataclass fields listed once (autodoc documents the attributes)


def _outputs_beside_doctrees(app) -> None:
    # MyST-NB writes notebook images to <outdir>/../jupyter_execute; the build folder's parent is
    # not the tour's to write in, so they go beside the doctrees instead (Sphinx copies them to _images)
    from pathlib import Path
    folder = Path(app.doctreedir) / "jupyter_execute"
    app.env.mystnb_config = app.env.mystnb_config.copy(output_folder=str(folder.resolve()))


def _search_splits_identifiers() -> None:
    # Sphinx indexes `pred_x1` as one word, but its search page splits a query at "_" and looks for
    # "pred" and "x1": index the parts of every identifier too, so identifiers are found in the text
    from sphinx import search
    from sphinx.search.en import SearchEnglish
    from sphinx.search.zh import SearchChinese

    def split(base):
        def inner(self, text):
            words = base.split(self, text)
            return words + [part for w in words if "_" in w for part in w.split("_") if part]
        return inner

    search.languages["en"] = type("FlowlabSearchEnglish", (SearchEnglish,), {"split": split(SearchEnglish)})
    search.languages["zh"] = type("FlowlabSearchChinese", (SearchChinese,), {"split": split(SearchChinese)})


def setup(app):
    _search_splits_identifiers()
    app.connect("builder-inited", _outputs_beside_doctrees, priority=900)
