"""The landing page of the tour's site (``index.md``): what flowlab is, the reading order, the verification table.

The prose is MyST Markdown, so Sphinx's gettext machinery translates it (``locale/zh_CN``). The two
tables hold what this run measured; they are raw HTML built here, every name and message escaped
(``html.escape``, links percent-encoded), once per edition (``{only} lang_en`` / ``lang_zh_CN``).
"""
from __future__ import annotations

import html
import math
import re
import urllib.parse
from dataclasses import dataclass, field

__all__ = ["NotebookSummary", "notebook_summary", "landing_page", "format_measured", "LANGS"]

# reading-time estimate: prose at 200 words a minute, code at 20 lines a minute, 15 s per figure
WORDS_PER_MIN, CODE_LINES_PER_MIN, FIGURE_MIN = 200, 20, 0.25

LANGS = ("en", "zh_CN")
# the words inside the generated tables, per edition (the prose around them goes through gettext)
WORDS = {
    "en": {"nb": "notebook", "shows": "what it shows", "time": "reading time", "passed": "claims passed",
           "claim": "claim", "kind": "kind", "measured": "measured", "limit": "limit", "result": "result",
           "of": "{ok} of {n}", "nb_failed": "{ok} of {n}; notebook failed", "not_run": "not run",
           "not_run_int": "not run (interrupted)", "n_passed": "{ok} of {n} claims passed",
           "unreadable": "(could not be read)", "runs_to_end": "the notebook runs to the end:",
           "no_claims": "no claims recorded", "min": "{m} min", "all": "all {n} claims passed",
           "some": "{bad} of {n} claims failed, {broke} notebook(s) broke",
           "ran": "This build ran {ran} of {total} notebooks: {status}.",
           "interrupted": "<strong>Interrupted.</strong> The tour was stopped before it finished. Notebooks that "
                          "ran: {done}. Not run: {todo}. Run <code>flowlab tour</code> again for a complete build.",
           "none": "none", "rule": "Reading times are estimated: prose at {w} words/min, code at {c} lines/min, "
                                   "{f} s per figure."},
    "zh_CN": {"nb": "笔记本", "shows": "内容", "time": "阅读时间", "passed": "通过的断言",
              "claim": "断言", "kind": "类型", "measured": "测得", "limit": "限值", "result": "结果",
              "of": "{ok} / {n}", "nb_failed": "{ok} / {n}；笔记本运行失败", "not_run": "未运行",
              "not_run_int": "未运行（已中断）", "n_passed": "{n} 条断言中 {ok} 条通过",
              "unreadable": "（无法读取）", "runs_to_end": "笔记本完整运行：",
              "no_claims": "没有记录断言", "min": "{m} 分钟", "all": "全部 {n} 条断言通过",
              "some": "{n} 条断言中 {bad} 条失败，{broke} 个笔记本出错",
              "ran": "本次构建运行了 {total} 个笔记本中的 {ran} 个：{status}。",
              "interrupted": "<strong>已中断。</strong>导览在完成前被停止。已运行的笔记本：{done}。未运行：{todo}。"
                             "再次运行 <code>flowlab tour</code> 以得到完整的构建。",
              "none": "无", "rule": "阅读时间为估计值：正文每分钟 {w} 词，代码每分钟 {c} 行，每张图 {f} 秒。"},
}


@dataclass
class NotebookSummary:
    title: str
    purpose: str
    minutes: int
    extras: dict = field(default_factory=dict)


def _strip_md(text: str) -> str:
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # images
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # links -> their text
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", text)
    return " ".join(text.split())


def _first_heading_and_purpose(blocks: list[str], title: str, purpose: str) -> tuple[str, str]:
    for block in blocks:
        block = block.strip()
        if not block:
            continue
        if not title and block.startswith("#"):
            title = _strip_md(block.splitlines()[0].lstrip("#").strip())
            rest = "\n".join(block.splitlines()[1:]).strip()
            if rest and not purpose and not rest.startswith(("|", "```", "<")):
                purpose = _strip_md(rest)
        elif title and not purpose and not block.startswith(("#", "|", "```", "<", "- ", "* ", ">")):
            purpose = _strip_md(block)
    return title, purpose


def _short_purpose(purpose: str) -> str:
    purpose = re.sub(r"^(Purpose|Goal|Aim)\s*:\s*", "", purpose, flags=re.I)
    purpose = re.sub(r"\s*(Symbols|Notation)\s*:[^.]*\.", "", purpose)  # the link to the notation page
    purpose = re.sub(r"\s*\((Notebook|See) [^)]*\)\s*$", "", purpose).strip()
    if len(purpose) > 240:  # the landing page shows one line: keep the leading sentences
        kept = ""
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", purpose):
            kept = f"{kept} {sentence}".strip()
            if len(kept) >= 120:
                break
        purpose = kept
    return purpose[0].upper() + purpose[1:] if purpose else purpose


def notebook_summary(nb) -> NotebookSummary:
    """Title (first heading), purpose (first paragraph after it) and an estimated reading time."""
    title, purpose = "", ""
    words = code_lines = figures = 0
    for cell in nb.cells:
        src = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type == "markdown":
            words += len(re.sub(r"\$[^$]*\$", " x ", src).split())
            if not title or not purpose:
                title, purpose = _first_heading_and_purpose(re.split(r"\n\s*\n", src), title, purpose)
        elif cell.cell_type == "code":
            code_lines += len([ln for ln in src.splitlines() if ln.strip()])
            for out in cell.get("outputs", []):
                if "image/png" in out.get("data", {}) or "image/svg+xml" in out.get("data", {}):
                    figures += 1
    title = re.sub(r"^\d+\s*[·.:-]\s*", "", title)
    minutes = max(1, math.ceil(words / WORDS_PER_MIN + code_lines / CODE_LINES_PER_MIN + figures * FIGURE_MIN))
    return NotebookSummary(title, _short_purpose(purpose), minutes,
                           {"words": words, "code_lines": code_lines, "figures": figures})


def format_measured(kind: str, error: float | None, tol: float | None, passed: bool) -> tuple[str, str]:
    """(measured, limit) as the verification table shows them for a claim of ``kind`` (HTML)."""
    if kind == "exact":
        return ("exact" if passed else "does not hold"), "&mdash;"
    if error is None:
        return "not measured", "-" if tol is None else f"{tol:g}"
    if kind == "ratio":
        return f"ratio {error:.3g}", f"&le; {tol:g}"
    if kind == "fraction":
        return f"fraction {error:.3g}", f"&le; {tol:g}"
    return f"{kind} {error:.2e}", f"&le; {tol:.0e}"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def page_href(docname: str) -> str:
    """The link from the landing page to a page: percent-encoded, so no name can break out of href."""
    return urllib.parse.quote(docname, safe="/") + ".html"


def _code(text: str) -> str:
    """A purpose line as HTML: `code` as code, $math$ for MathJax (as Sphinx writes it), the rest escaped."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]+`|\$[^$]+\$)", text)):
        if i % 2 == 0:
            out.append(_e(part))
        elif part.startswith("`"):
            out.append(f"<code>{_e(part[1:-1])}</code>")
        else:
            out.append(f'<span class="math notranslate nohighlight">\\({_e(part[1:-1])}\\)</span>')
    return "".join(out)


def _reading_rows(w: dict, notebooks: list[tuple[str, str]], summaries: dict, runs: dict, by_nb: dict,
                  titles: dict | None = None) -> list[str]:
    rows = []
    for i, (name, docname) in enumerate(notebooks, 1):
        s, r, cl = summaries.get(name), runs.get(name), by_nb.get(name, [])
        ok = sum(c.passed for c in cl)
        if r is None or r.status == "not run":
            verdict = f'<span class="fl-muted">{w["not_run"]}</span>'
        elif r.error:
            verdict = f'<span class="fl-fail">{w["nb_failed"].format(ok=ok, n=len(cl))}</span>'
        else:
            verdict = f'<span class="{"fl-pass" if ok == len(cl) else "fl-fail"}">{w["of"].format(ok=ok, n=len(cl))}</span>'
        title = (titles or {}).get(name) or (s.title if s and s.title else name)
        purpose = _code(s.purpose) if s else f'<span class="fl-muted">{w["unreadable"]}</span>'
        minutes = w["min"].format(m=s.minutes) if s else "-"
        number = re.match(r"\d*", name).group()
        rows.append(f'<tr><td>{_e(number)}</td><td><a href="{_e(page_href(docname))}">{_e(title)}</a></td>'
                    f'<td>{purpose}</td><td class="fl-time">{minutes}</td><td class="fl-claims">{verdict}</td></tr>')
    return rows


def _claims_group(w: dict, r, cl: list) -> str:
    ok = sum(c.passed for c in cl)
    bad = bool(r.error) or ok < len(cl)
    head = f"{_e(r.notebook)} &mdash; "
    if r.status == "not run":
        head += f'<span class="fl-muted">{w["not_run_int"]}</span>'
    else:
        head += f'<span class="{"fl-fail" if bad else "fl-pass"}">{w["n_passed"].format(ok=ok, n=len(cl))}</span>'
        head += f' <span class="fl-muted">({r.seconds:.0f} s)</span>'
    rows = []
    for c in cl:
        kind = getattr(c, "kind", None) or "error"
        measured, limit = format_measured(kind, c.error, c.tol, c.passed)
        res = '<span class="fl-pass">PASS</span>' if c.passed else '<span class="fl-fail">FAIL</span>'
        rows.append(f'<tr><td>{_e(c.claim)}</td><td><span class="fl-kind">{_e(kind)}</span></td>'
                    f'<td class="fl-num">{measured}</td><td class="fl-num">{limit}</td><td>{res}</td></tr>')
    if r.error:
        rows.append(f'<tr><td colspan="4">{w["runs_to_end"]} <strong>{_e(r.error)}</strong></td>'
                    '<td><span class="fl-fail">FAIL</span></td></tr>')
    table = (f'<div class="fl-scroll"><table class="fl-claims table"><thead><tr><th>{w["claim"]}</th><th>{w["kind"]}</th>'
             f'<th>{w["measured"]}</th><th>{w["limit"]}</th><th>{w["result"]}</th></tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table></div>') if rows else \
        f'<p class="fl-muted">{w["no_claims"]}</p>'
    return (f'<details class="fl-group"{" open" if bad and r.status != "not run" else ""}>'
            f'<summary>{head}</summary>{table}</details>')


def _raw(lang: str, body: str) -> str:
    # a fence longer than any backtick run in the body, so no name can end the block early
    inner = "`" * max(4, 1 + max((len(m) for m in re.findall(r"`+", body)), default=0))
    outer = inner + "`"
    return f"{outer}{{only}} lang_{lang}\n{inner}{{raw}} html\n{body}\n{inner}\n{outer}\n"


INTRO = ("flowlab is a reference for diffusion and flow-matching *timestep conventions*. diffusers, SD3 and Flux "
         "run time as $\\sigma$ from 1 (noise) to 0 (data); Hunyuan3D-2's shape model, SiT and the flow-matching "
         "literature run $t$ from 0 (noise) to 1 (data). The same Euler line $x' = x + (s' - s)\\,v$ then means "
         "different things, and ports get signs and endpoints wrong. Each notebook below derives one piece (SymPy), "
         "runs it (torch), and checks it: every check is a claim that this tour re-ran and lists in the "
         "verification table.")


def _status(w: dict, runs: list, claims: list, total: int, interrupted: bool) -> str:
    n_pass = sum(c.passed for c in claims)
    broke = sum(1 for r in runs if r.error)
    status = (f'<span class="fl-pass">{w["all"].format(n=n_pass)}</span>' if claims and n_pass == len(claims)
              and not broke else
              f'<span class="fl-fail">{w["some"].format(bad=len(claims) - n_pass, n=len(claims), broke=broke)}</span>')
    ran = sum(1 for r in runs if r.status != "not run")
    out = f'<p>{w["ran"].format(ran=ran, total=total, status=status)}</p>'
    if interrupted:
        done = ", ".join(_e(r.notebook) for r in runs if r.status in ("ran", "failed")) or w["none"]
        todo = ", ".join(_e(r.notebook) for r in runs if r.status == "not run") or w["none"]
        out += f'<div class="fl-banner">{w["interrupted"].format(done=done, todo=todo)}</div>'
    return out


def landing_page(notebooks: list[tuple[str, str]], summaries: dict, runs: list, claims: list, *,
                 interrupted: bool, total: int, start: list[str], extra: list[str], api: bool,
                 titles: dict[str, dict[str, str]] | None = None) -> str:
    """index.md: ``notebooks`` are (file name, docname) in reading order; ``start`` the sources to read
    first (``NOTATION.md``), ``extra`` exercises and guides (paths with their suffix); ``api``: link the
    API reference (``api.md``); ``titles``: per edition, a notebook's translated title."""
    by_nb: dict[str, list] = {}
    for c in claims:
        by_nb.setdefault(c.notebook, []).append(c)
    run_of = {r.notebook: r for r in runs}
    parts = ["# flowlab tour\n", INTRO + "\n"]
    parts += [_raw(lang, _status(WORDS[lang], runs, claims, total, interrupted)) for lang in LANGS]
    parts.append("## Reading order\n")
    if start:
        parts.append(f"Start with the [notation]({start[0]}) page: which symbol means what, in which convention. "
                     "Then read the notebooks in order; each goes equation, one flowlab call, a checked claim, "
                     "the pitfall it guards against.\n")
    for lang in LANGS:
        w = WORDS[lang]
        head = "".join(f"<th>{h}</th>" for h in ("#", w["nb"], w["shows"], w["time"], w["passed"]))
        rows = "".join(_reading_rows(w, notebooks, summaries, run_of, by_nb, (titles or {}).get(lang)))
        rule = w["rule"].format(w=WORDS_PER_MIN, c=CODE_LINES_PER_MIN, f=int(FIGURE_MIN * 60))
        parts.append(_raw(lang, f'<div class="fl-scroll"><table class="fl-reading table"><thead><tr>{head}</tr>'
                                f'</thead><tbody>{rows}</tbody></table></div><p class="fl-muted">{rule}</p>'))
    if extra or api:
        parts.append("## Exercises, guides and the API\n")
        parts += [f"- [](<{doc}>)" for doc in extra] + (["- [](api.md)"] if api else []) + [""]
    parts.append("## Verification\n")
    parts.append("Every claim the notebooks made in this run, grouped per notebook (click to open). *exact*: holds "
                 "exactly (a symbolic identity, an equal count); *ratio* and *fraction*: the measured quotient or "
                 "share against its bound; *abs error*, *rel error*, *error*: a measured difference against its "
                 "tolerance.\n")
    for lang in LANGS:
        parts.append(_raw(lang, "\n".join(_claims_group(WORDS[lang], r, by_nb.get(r.notebook, [])) for r in runs)))
    for caption, docs in (("Start here", start), ("Notebooks", [d for _, d in notebooks]),
                          ("Exercises and guides", extra), ("Reference", ["api.md"] if api else [])):
        if docs:
            entries = "\n".join(re.sub(r"\.(md|ipynb)$", "", d) for d in docs)
            parts.append(f"```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{entries}\n```\n")
    return "\n".join(parts)
