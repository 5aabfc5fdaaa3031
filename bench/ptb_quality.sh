#!/usr/bin/env bash
# Quality benchmarks behind the README's figures (long: about 1.5 hours on a 2-core CPU; THREADS=1 to run two at once).
#   zaremba-small   the small configuration of Zaremba et al. 2014 (paper: validation perplexity 120.7)
#   shakespeare     nlm's recommended character-level configuration on Tiny Shakespeare
# The equal-time comparison with the PyTorch example itself is bench/equal_time.py.
# Each run writes runs/bench/NAME; bench/summarize.py prints the table.  Pass names to run a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
NLM=${NLM:-.venv/bin/nlm}
THREADS=${THREADS:-}
DATA=../shared/data
OUT=runs/bench
PTB="--train $DATA/ptb/ptb.train.txt --valid $DATA/ptb/ptb.valid.txt"
mkdir -p "$OUT"
[ -d "$DATA/ptb" ] || { echo "bench: $DATA/ptb not found" >&2; exit 66; }

run() {  # NAME ARGS...: one training run, its wall time recorded beside it
  local name=$1; shift
  local start; start=$(date +%s)
  "$NLM" ${THREADS:+--threads $THREADS} train "$@" -o "$OUT/$name" --force 2> "$OUT/$name.log"
  echo $(( $(date +%s) - start )) > "$OUT/$name.wall"
}

declare -A RUNS=(
  # Zaremba et al. sum the loss over the 20 time steps; nlm averages it per token.  The same
  # updates on nlm's mean loss are 20x the learning rate and 1/20 the clipping norm: lr 1 -> 20, clip 5 -> 0.25.
  [zaremba-small]="$PTB --layers 2 --emb 200 --hidden 200 --no-tie --dropout 0 --init-range 0.1 --bptt 20 --batch-size 20 --optimizer sgd --lr 20 --schedule decay --lr-factor 0.5 --decay-start 4 --clip 0.25 --epochs 13"
  [shakespeare]="--train $DATA/tinyshakespeare/train.txt --valid $DATA/tinyshakespeare/valid.txt --level char --hidden 256 --layers 2 --dropout 0.2 --bptt 100 --batch-size 32 --optimizer adam --lr 2e-3 --clip 1 --epochs 40 --max-time 1200"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(zaremba-small shakespeare)
for name in "${names[@]}"; do
  echo "bench: $name" >&2
  # shellcheck disable=SC2086
  run "$name" ${RUNS[$name]}
done
.venv/bin/python bench/summarize.py "$OUT"
