#!/usr/bin/env bash
# CIFAR-100: every standard teacher/student pair x every method x 3 seeds, standard 240-epoch recipe.
# Needs a GPU and the CIFAR-100 python-pickle data (downloaded with checksum verification when missing and
# the network allows, or given with DATA_DIR).  Resumable: re-run to continue.  Writes, per pair,
# runs/cifar100/<pair>/results.{csv,md,png}, and a combined runs/cifar100/summary.md.
# These numbers were NOT measured in the development environment (no GPU there).
# Teachers: the published ones, $DATA_DIR/teachers/<model>_vanilla/ckpt_epoch_240.pth (the layout of RepDistiller's
# fetch_pretrained_teachers.sh and of mdistiller's cifar_teachers.tar); each is imported once (`akd teacher --import`:
# test accuracy measured and cached, a warning if it is more than 0.2 points from experiments/cifar100/published.toml).
# results.md of each pair shows the published accuracy of each method next to akd's (akd compare's `published` column).
# dkd runs the preset (beta 8, mdistiller's resnet32x4 -> resnet8x4 setting; mdistiller uses beta 2 for the resnet56/110
# teachers and 6 for vgg13 and wrn_40_2 -> wrn_16_2: a grid with a dkd(beta=...) term reproduces those).
#   usage: DATA_DIR=/path/to/data experiments/run_cifar100.sh [extra akd flags, e.g. --epochs 240 --jobs 1]
set -euo pipefail
cd "$(dirname "$0")/.."
AKD=${AKD:-akd}
METHODS=${METHODS:-ce,kd,rkd,cc,sp,pkt,dkd,dist,vrm}
SEEDS=${SEEDS:-0,1,2}
OUT=${OUT:-runs/cifar100}
data=()
[ -n "${DATA_DIR:-}" ] && data=(--data-dir "$DATA_DIR")
for cfg in experiments/cifar100/*.toml; do
  pair=$(basename "$cfg" .toml)
  [ "$pair" = published ] && continue
  teacher=$(sed -n 's/^teacher = "\(.*\)"$/\1/p' "$cfg")
  ckpt="${DATA_DIR:-.}/teachers/${teacher}_vanilla/ckpt_epoch_240.pth"
  echo "== $pair (teacher $ckpt)"
  $AKD teacher --import "$ckpt" --model "$teacher" --dataset cifar100 "${data[@]}"
  $AKD compare --config "$cfg" --teacher "$teacher" --teacher-ckpt "$ckpt" --methods "$METHODS" --seeds "$SEEDS" "${data[@]}" \
    --out "$OUT/$pair" --quiet "$@"
done
{
  echo "# CIFAR-100 (akd compare, $SEEDS seeds)"
  for cfg in experiments/cifar100/*.toml; do
    pair=$(basename "$cfg" .toml)
    [ "$pair" = published ] && continue
    echo; echo "## $pair"; echo
    sed -n '/^| cell/,/^$/p' "$OUT/$pair/results.md"
  done
} > "$OUT/summary.md"
echo "wrote $OUT/summary.md"
