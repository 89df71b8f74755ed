"""`flowlab tour --out`: never delete or write through what flowlab did not make; every name reaching HTML escaped.

Issue 22: `tour --out d` deleted a user's `d/static/` (with notes.txt in it), `d/static` as a symbolic
link ended in a traceback, and a notebook named `01_x" onmouseover="alert(1).ipynb` was written unescaped
into index.html's href.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from flowlab.cli import main
from nbtools import write_notebook

CLAIM_OK = "from flowlab.claims import claim\nclaim('two plus two is four', abs(2 + 2 - 4), 1e-12)"


def _tour(nbs: Path, out: Path, *extra: str) -> list[str]:
    return ["tour", "--notebooks", str(nbs), "--out", str(out), "--device", "cpu", "--quiet", *extra]


@pytest.fixture()
def nbs(tmp_path: Path) -> Path:
    folder = tmp_path / "nbs"
    folder.mkdir()
    write_notebook(folder / "01_ok.ipynb", [(CLAIM_OK, None)])
    return folder


def test_a_folder_the_tour_did_not_make_is_refused_and_kept(tmp_path: Path, nbs: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d"
    (out / "static").mkdir(parents=True)
    (out / "static" / "notes.txt").write_text("my notes")
    (out / "index.html").write_text("my page")
    assert main(_tour(nbs, out, "--no-html")) == 1
    err = capsys.readouterr().err
    assert "is not empty and was not written by flowlab tour" in err and "Traceback" not in err, err
    assert (out / "static" / "notes.txt").read_text() == "my notes"
    assert (out / "index.html").read_text() == "my page"
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "static"]  # nothing added either


def test_an_empty_folder_and_the_tours_own_folder_are_accepted(tmp_path: Path, nbs: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d"
    out.mkdir()
    assert main(_tour(nbs, out, "--no-html")) == 0
    assert (out / ".flowlab-tour").is_file() and (out / "01_ok.ipynb").is_file()
    assert main(_tour(nbs, out, "--no-html")) == 0  # the second tour into its own folder
    assert "1 passed, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("link", ["static", "_static", "zh"])
def test_a_symbolic_link_inside_the_build_folder_is_refused_without_a_traceback(
        tmp_path: Path, nbs: Path, link: str, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d"
    assert main(_tour(nbs, out, "--no-html")) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    (out / link).symlink_to(elsewhere, target_is_directory=True)
    capsys.readouterr()
    assert main(_tour(nbs, out)) == 1
    err = capsys.readouterr().err
    assert f"{out / link} is a symbolic link inside the build folder" in err and "Traceback" not in err, err
    assert [p.name for p in elsewhere.iterdir()] == ["keep.txt"] and (elsewhere / "keep.txt").read_text() == "keep"


def test_a_build_folder_that_is_a_file_is_refused(tmp_path: Path, nbs: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d"
    out.write_text("not a folder")
    assert main(_tour(nbs, out, "--no-html")) == 1
    assert "exists and is not a folder" in capsys.readouterr().err
    assert out.read_text() == "not a folder"


class _Attrs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.attrs += [(tag, k, v) for k, v in attrs]


@pytest.mark.slow
def test_every_name_reaching_html_is_escaped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    evil = '01_x" onmouseover="alert(1)'
    write_notebook(nbs / f"{evil}.ipynb", [
        ("from flowlab.claims import claim\nclaim('<img src=x onerror=alert(2)> holds', 0.0, 1e-6)", None)])
    write_notebook(nbs / "02_<img src=y onerror=alert(3)>.ipynb", [("x = 1\nraise ValueError('<b onclick=alert(4)>')", None)])
    out = tmp_path / "build"
    assert main(_tour(nbs, out)) == 1  # the second notebook fails on purpose
    capsys.readouterr()
    pages = [p for p in out.rglob("*.html") if not any(x.startswith(("_", ".")) for x in p.relative_to(out).parts)]
    assert len(pages) >= 10
    for page in pages:
        text = page.read_text(encoding="utf-8")
        parser = _Attrs()
        parser.feed(text)
        # the theme's own handlers (a print button) are fine; none may come from a name
        injected = [(tag, k, v) for tag, k, v in parser.attrs
                    if k.startswith("on") and (k != "onclick" or "alert" in (v or ""))]
        assert not injected, (page, injected)
        assert "<img src=y" not in text and "<img src=x" not in text and "<b onclick" not in text, page
    index = (out / "index.html").read_text(encoding="utf-8")
    assert not [p for p in out.rglob("*.html") if re.search(r'["<> =()]', p.name)]  # pages get plain names
    hrefs = re.findall(r'href="(01_x_onmouseover_alert_1-[0-9a-f]{8}\.html)"', index)
    assert hrefs and (out / hrefs[0]).is_file() and (out / "zh" / hrefs[0]).is_file(), hrefs
    assert "01_x&quot; onmouseover=&quot;alert(1).ipynb" in index  # the name itself is shown, as text
    assert "&lt;img src=x onerror=alert(2)&gt; holds" in index  # the claim is shown, as text
