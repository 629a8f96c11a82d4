#!/usr/bin/env bash
# The residual experiment's claims (README "Why residual? The experiment",
# BENCHMARKS.md), measured with fixed seeds and budgets on the CPU backend:
#   A: no batchnorm, Glorot and He: the gradient at the first block, depths 8–56, 30 steps;
#   B: batchnorm: the degradation problem, depths 20, 32, 56, 10 epochs;
#   C: zero-γ at depth 20; D: no batchnorm, Glorot, depth 56 for 10 epochs.
# Not a test (about 15 minutes on a 2-core VM). Output: one .txt (the
# summary table) and one .json (every step) per run in DIR.
#   bash tools/experiment_claims.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/experiment-claims}
mkdir -p "$out"
cargo build --release -q
bin=$PWD/target/release/resnet
run() { local name=$1; shift; "$bin" experiment --backend cpu --out "$out/$name.json" "$@" > "$out/$name.txt"; echo "== $name: $*"; cat "$out/$name.txt"; }
for init in glorot he; do
  for d in 8 20 32 56; do run "A-$init-$d" --depth $d --no-bn --init $init --steps 30 --eval-every 30 --lr 0.01; done
done
for d in 20 32 56; do run "B-$d" --depth $d --epochs 10 --eval-every 21 --lr 0.05; done
run C-20 --depth 20 --zero-gamma --epochs 10 --eval-every 21
run D-56 --depth 56 --no-bn --init glorot --epochs 10 --eval-every 21 --lr 0.05
