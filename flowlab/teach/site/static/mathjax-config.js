// MathJax 3 configuration for the flowlab tour pages (loaded before static/mathjax/tex-svg-full.js).
// SVG output: the glyphs are inside the script, so nothing else is fetched (file:// pages work).
// textmacros: \_ and friends inside \text{...}. noerrors / noundefined are removed so that a bad
// formula shows as a MathJax error (an merror node) that the browser test can find.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    packages: {"[+]": ["textmacros"], "[-]": ["noerrors", "noundefined"]}
  },
  svg: {fontCache: "global"},
  options: {
    ignoreHtmlClass: "tex2jax_ignore",
    processHtmlClass: "tex2jax_process",
    enableMenu: false
  },
  startup: {
    pageReady: function () {
      return MathJax.startup.defaultPageReady().then(function () {
        document.documentElement.setAttribute("data-mathjax", "done");
      });
    }
  }
};
