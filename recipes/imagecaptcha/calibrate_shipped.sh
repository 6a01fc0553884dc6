#!/usr/bin/env bash
# Fit the shipped weights' confidence calibration (captcha/calibration.py), then make their int8 trunk, without retraining them,
# on images of both looks that no round trained on, chose checkpoints by or is graded on:
# calibration-v071 / calibration-v03 (seed bases 7000001 / 7000002, 2000 each; build.sh draws them).
#   bash recipes/imagecaptcha/calibrate_shipped.sh [WEIGHTS]     (default: weights/)
# Writes the fit into each weights file's metadata (tensors unchanged) and $OUT/calibration.txt,
# which the model card quotes; then grade with evaluate_shipped.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE=${CAPTCHA_CACHE:-$HOME/.cache/captcha}
DATA=$CACHE/data/imagecaptcha
WEIGHTS=${1:-weights}
OUT=${OUT:-$CACHE/eval}
mkdir -p "$OUT"
bash "$HERE/build.sh" --no-train --workers "${WORKERS:-1}"
# Each threshold is the strictest of the two looks': sure keeps its accuracy on each, not only on their mix.
python -m captcha calibrate "$DATA/calibration-v071" "$DATA/calibration-v03" --weights "$WEIGHTS" \
  --engine onnx --precision fp32 | tee "$OUT/calibration.txt"
# Then the int8 trunk (captcha/int8.py) from the same images: activation ranges measured on 300 of
# them, checked against fp32 on the other 3700; stored as metadata beside the calibration.
python -m captcha quantize --weights "$WEIGHTS" \
  --data "$DATA/calibration-v071" "$DATA/calibration-v03" | tee "$OUT/int8.txt"
