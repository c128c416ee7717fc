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
