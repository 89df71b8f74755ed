#!/usr/bin/env bash
# Set up flowlab in a virtual environment (.venv) and run one job.
#
#   bash scripts/run.sh tour    # the main job: run every notebook, print the verification table
#   bash scripts/run.sh test    # the whole test suite: unit tests + every notebook under nbval
#
# torch is installed first and deliberately: FLOWLAB_TORCH (default "torch==2.13.0") is the pip
# requirement used when the venv has no torch yet; on a CUDA machine set it to the build you want,
# e.g. FLOWLAB_TORCH="torch==2.14.1". FLOWLAB_VENV picks another venv folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

job="${1:-}"
case "$job" in
  tour|test) shift ;;
  *) echo "usage: bash scripts/run.sh {tour|test} [extra arguments for flowlab tour / pytest]" >&2; exit 2 ;;
esac

venv="${FLOWLAB_VENV:-.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv" >&2
  "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c "import torch" 2>/dev/null; then
  echo "== installing ${FLOWLAB_TORCH:-torch==2.13.0}" >&2
  # shellcheck disable=SC2086  # FLOWLAB_TORCH may carry pip options (--index-url ...)
  python -m pip install -q ${FLOWLAB_TORCH:-torch==2.13.0}
fi
echo "== installing flowlab and its dependencies" >&2
python -m pip install -q -e ".[all]"
python -m pip install -q --no-deps -r requirements-nodeps.txt
python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (flowlab)" >/dev/null

export PYTHONHASHSEED=0
# The pages use the MathJax 3 copy inside flowlab/teach/site/static (nothing to install); the browser test
# needs a system Chromium (.ci/run installs the Debian package) and skips without one.
if [ "$job" = test ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
   && [ -z "${FLOWLAB_CHROMIUM:-}" ]; then
  echo "== no chromium: tests/test_browser.py will skip (apt-get install chromium, or set FLOWLAB_CHROMIUM)" >&2
fi
case "$job" in
  tour) exec flowlab tour "$@" ;;
  test) exec python -m pytest "$@" ;;
esac
