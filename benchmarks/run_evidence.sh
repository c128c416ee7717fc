#!/usr/bin/env bash
# Reproduce benchmarks/results (Fashion-MNIST, CPU budget).  Resumable: re-run to continue.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # two jobs share 2 cores here; 1 thread each avoids thrashing
cd "$(dirname "$0")/.."
AKD=${AKD:-.venv/bin/akd}
$AKD compare --config experiments/fmnist_evidence.toml --methods ce,kd,rkd,cc,sp,pkt,vrm-zs-edge --seeds 0,1,2 \
    --out benchmarks/results/fmnist_compare --quiet
$AKD grid --grid experiments/vrm_ablation_fmnist.toml --out benchmarks/results/fmnist_vrm_ablation --quiet
# pictures (results.png, curves.png) and the paired-by-seed differences to the baselines (stats_vs_*.md)
$AKD report benchmarks/results/fmnist_compare --baseline method=kd >/dev/null
$AKD report benchmarks/results/fmnist_compare --baseline method=ce >/dev/null
$AKD report benchmarks/results/fmnist_vrm_ablation --baseline "vrm (preset)" >/dev/null
# the VRM readings on the CPU budget (experiments/vrm_readings_fmnist.toml)
$AKD grid --grid experiments/vrm_readings_fmnist.toml --out benchmarks/results/fmnist_vrm_readings --quiet
# the virtual view's RandAugment strength and base, and the inter-class graph's weight (experiments/vrm_views_fmnist.toml)
$AKD grid --grid experiments/vrm_views_fmnist.toml --out benchmarks/results/fmnist_vrm_views --quiet
$AKD report benchmarks/results/fmnist_vrm_views --baseline "vrm (paper reading)" >/dev/null

# The larger budget (experiments/fmnist_full.toml: 60k images, cnn_small student, 10 epochs), all with the
# committed teacher (cnn_wide, 92.10 %), so later sittings resume with the same one.  Several hours on 1 core.
FULL_TEACHER=benchmarks/results/fmnist_full_teacher/model.pt
# the two grids run side by side (1 thread each: one per core of a 2-core machine); each is resumable on its own
$AKD grid --grid experiments/vrm_readings.toml --teacher-ckpt $FULL_TEACHER \
    --out benchmarks/results/fmnist_full_vrm_readings --quiet &
readings=$!
# the comparison as a grid over --method: the methods of a seed share one teacher forward per batch (akd compare
# runs them one by one, each with its own teacher forward); the runs are the same
$AKD grid --config experiments/fmnist_full.toml --teacher-ckpt $FULL_TEACHER \
    --method ce,kd,dkd,dist,rkd,cc,sp,pkt,vrm,vrm-zs-edge --seeds 0,1,2 \
    --out benchmarks/results/fmnist_full_compare --quiet &
compare=$!
# Ctrl-C reaches both (same process group) and each stops at a checkpoint; a TERM sent to this script alone is
# passed on (once: a second signal would abort them)
trap 'kill -TERM $readings $compare 2>/dev/null; wait' TERM
wait $readings
wait $compare
$AKD report benchmarks/results/fmnist_full_vrm_readings --baseline "vrm (paper reading)" >/dev/null
$AKD report benchmarks/results/fmnist_full_compare --baseline method=ce >/dev/null
