#!/usr/bin/env bash
# Run every notebook under nbval N times in a row (default 10) and report how many rounds passed.
# Not part of every CI run (it takes N times the notebook suite); one job before a release, or after a
# change to a notebook or to something the notebooks print, shows that the stored outputs are deterministic.
#
#   bash tools/nbval_repeat.sh               # 10 rounds over notebooks/*.ipynb and notebooks/exercises/*.ipynb
#   bash tools/nbval_repeat.sh 2 notebooks/02_*.ipynb    # 2 rounds over some notebooks
#
# Runs inside the current Python environment (activate .venv first, or set PYTHON). Each round is a
# fresh `python -m pytest` (fresh kernels); the per-round log is kept under ${NBVAL_LOG_DIR:-build/nbval_repeat}.
# Exit status: 0 when every round passed, 1 otherwise; the summary names the failing rounds.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds="${1:-10}"
shift || true
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash tools/nbval_repeat.sh [ROUNDS >= 1] [NOTEBOOK ...]" >&2
  exit 2
fi
if [ "$#" -gt 0 ]; then notebooks=("$@"); else notebooks=(notebooks/*.ipynb notebooks/exercises/*.ipynb); fi
python="${PYTHON:-python}"
logs="${NBVAL_LOG_DIR:-build/nbval_repeat}"
mkdir -p "$logs"
export PYTHONHASHSEED=0

passed=0
failed=()
for ((i = 1; i <= rounds; i++)); do
  start=$(date +%s)
  if "$python" -m pytest -q -p no:cacheprovider "${notebooks[@]}" >"$logs/round_$i.log" 2>&1; then
    passed=$((passed + 1)); verdict=passed
  else
    failed+=("$i"); verdict=FAILED
  fi
  echo "round $i/$rounds: $verdict in $(( $(date +%s) - start )) s ($(tail -n 1 "$logs/round_$i.log"))"
done
echo "nbval repeat: $passed of $rounds rounds passed over ${#notebooks[@]} notebook(s)${failed:+; failed rounds: ${failed[*]} (logs in $logs)}"
[ "$passed" -eq "$rounds" ]
