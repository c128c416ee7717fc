#!/usr/bin/env bash
# CIFAR-100: every standard teacher/student pair x every method x 3 seeds, standard 240-epoch recipe.
# Needs a GPU and the CIFAR-100 python-pickle data (downloaded with checksum verification when missing and
# the network allows, or given with DATA_DIR).  Resumable: re-run to continue.  Writes, per pair,
# runs/cifar100/<pair>/results.{csv,md,png}, and a combined runs/cifar100/summary.md.
# These numbers were NOT measured in the development environment (no GPU there).
#   usage: DATA_DIR=/path/to/data experiments/run_cifar100.sh [extra akd flags, e.g. --epochs 240 --jobs 1]
set -euo pipefail
cd "$(dirname "$0")/.."
AKD=${AKD:-akd}
METHODS=${METHODS:-ce,kd,rkd,cc,sp,pkt,vrm}
SEEDS=${SEEDS:-0,1,2}
OUT=${OUT:-runs/cifar100}
data=()
[ -n "${DATA_DIR:-}" ] && data=(--data-dir "$DATA_DIR")
for cfg in experiments/cifar100/*.toml; do
  pair=$(basename "$cfg" .toml)
  echo "== $pair"
  $AKD compare --config "$cfg" --methods "$METHODS" --seeds "$SEEDS" "${data[@]}" --out "$OUT/$pair" --quiet "$@"
done
{
  echo "# CIFAR-100 (akd compare, $SEEDS seeds)"
  for cfg in experiments/cifar100/*.toml; do
    pair=$(basename "$cfg" .toml)
    echo; echo "## $pair"; echo
    sed -n '/^| cell/,/^$/p' "$OUT/$pair/results.md"
  done
} > "$OUT/summary.md"
echo "wrote $OUT/summary.md"
