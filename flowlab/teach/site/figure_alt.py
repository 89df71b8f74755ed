"""Alt text for the tour's figures, written by the notebook kernel itself.

The tour starts each kernel with :func:`install` (IPython ``exec_lines``): a matplotlib figure's
``text/plain`` representation, stored beside its PNG in the same output, then describes the figure from
what it says about itself: its title, each panel's title and axis labels, and its legend entries.
:func:`flowlab.teach.site._figure_alt` moves that text into the cell's ``mystnb.image.alt`` for the page.
"""
from __future__ import annotations

from typing import Any

PREFIX = "Figure:"
KERNEL_ARGS = ["--InlineBackend.figure_formats={'retina'}",
               "--IPKernelApp.exec_lines=__import__('flowlab.teach.site.figure_alt').teach.site.figure_alt.install()"]


def _axes_text(ax: Any) -> str:
    bits = []
    title = " ".join(t for t in (ax.get_title("left"), ax.get_title(), ax.get_title("right")) if t)
    if title:
        bits.append(f"“{title}”")
    labels = [lab for lab in (ax.get_xlabel(), ax.get_ylabel()) if lab]
    if labels:
        bits.append("axes " + " and ".join(labels))
    legend = ax.get_legend()
    if legend is not None:
        entries = [t.get_text() for t in legend.get_texts() if t.get_text()]
        if entries:
            bits.append("legend " + ", ".join(entries[:6]) + (" ..." if len(entries) > 6 else ""))
    return ", ".join(bits)


def describe(fig: Any) -> str:
    """``Figure: <title>; N panels: <panel 1>; <panel 2> ...``: what a reader who cannot see it needs."""
    axes = [ax for ax in fig.get_axes() if ax.get_visible() and ax.get_label() != "<colorbar>"]
    head = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    panels = [t for t in (_axes_text(ax) for ax in axes) if t]
    parts = [head] if head else []
    if len(axes) > 1:
        parts.append(f"{len(axes)} panels")
    parts += panels
    text = "; ".join(parts) or "a figure without title or labels"
    return f"{PREFIX} {text}"


def _printer(fig: Any, p: Any, cycle: bool) -> None:
    p.text(describe(fig))


def install() -> None:
    """Register :func:`describe` as the text form of matplotlib figures in this IPython kernel.

    Activating the inline backend (the first ``import matplotlib.pyplot``) removes every formatter
    registered for ``Figure``, so pyplot is imported (and the backend activated) first, and the
    registration is renewed after each cell in case a cell changes the inline backend's formats.
    """
    from IPython import get_ipython
    ip = get_ipython()
    if ip is None:
        return
    import matplotlib
    import matplotlib.pyplot as plt
    plt.switch_backend(matplotlib.get_backend())  # activates the inline backend now, not inside a cell
    plain = ip.display_formatter.formatters["text/plain"]
    key = ("matplotlib.figure", "Figure")

    def ensure() -> None:
        registered = key in plain.deferred_printers or any(
            (getattr(c, "__module__", ""), getattr(c, "__name__", "")) == key and f is _printer
            for c, f in plain.type_printers.items())
        if not registered:
            plain.for_type_by_name(*key, _printer)

    ensure()
    ip.events.register("post_execute", ensure)
