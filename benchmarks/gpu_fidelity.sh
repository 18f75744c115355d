#!/usr/bin/env bash
# Proxy-fidelity benchmark (issue 13) on one CUDA GPU: Fashion-MNIST, then digits, the proxy variants in
# $VARIANTS, 15 architectures at 32×32. Tables go to stdout and $OUT/<dataset>.txt, per-run progress to $OUT/<dataset>.log,
# results to $OUT/<dataset>.json (rewritten after every run, so a cut-off run still leaves its figures).
# Budget: ≤ 7 minutes on one H100 — the time limits (FASHION_S + DIGITS_S seconds) stop new work and report
# what finished; jobs run in priority order (references, default proxy, then variants one by one).
# Measured on one H100 with 8 workers (Fashion-MNIST, 32²): the 15 references take ≈ 180 s of wall time, the default
# proxy ≈ 55 s per 2 seeds, a 2×-epoch level ≈ 110 s — so 270 s holds the references, the default and one level.
#
#   benchmarks/gpu_fidelity.sh [FASHION_ROOT]        # default ./.gpu/fashion-mnist (the IDX files)
#   env: OUT (./out), WORKERS (8 processes sharing the GPU), FASHION_S (270), DIGITS_S (80), DEVICE (cuda),
#        VARIANTS (default level1_warm more_data no_clip lr_width level1_fresh: most informative first)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # pisearch from this checkout (not pip-installed there)
OUT="${OUT:-./out}"
ROOT="${1:-./.gpu/fashion-mnist}"
mkdir -p "$OUT"
read -r -a variants <<< "${VARIANTS:-default level1_warm more_data no_clip lr_width level1_fresh}"
common=(--device "${DEVICE:-cuda}" --workers "${WORKERS:-8}" --threads 1 --eval-batch 4096 --variants "${variants[@]}")

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
           torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU visible')"

python benchmarks/proxy_fidelity.py --dataset fashion_mnist --data-root "$ROOT" "${common[@]}" \
    --time-limit "${FASHION_S:-270}" --out "$OUT/fashion_mnist.json" 2> "$OUT/fashion_mnist.log" \
    | tee "$OUT/fashion_mnist.txt"
fashion=$?
tail -n 3 "$OUT/fashion_mnist.log"

python benchmarks/proxy_fidelity.py --dataset digits "${common[@]}" --reference-seeds 2 \
    --time-limit "${DIGITS_S:-80}" --out "$OUT/digits.json" 2> "$OUT/digits.log" | tee "$OUT/digits.txt"
digits=$?
tail -n 3 "$OUT/digits.log"

echo "exit codes: fashion_mnist $fashion, digits $digits"
exit $(( fashion || digits ))
