#!/usr/bin/env bash
# Grade weights on the held-out sets (seeds disjoint from training; see README.md here).
#   bash recipes/imagecaptcha/evaluate_shipped.sh [WEIGHTS]     (default: weights/)
# Writes $OUT/heldout-v071.json and $OUT/heldout-v03.json and prints the tables for the model card.
set -euo pipefail
CACHE=${CAPTCHA_CACHE:-$HOME/.cache/captcha}
DATA=$CACHE/data/imagecaptcha
WEIGHTS=${1:-weights}
OUT=${OUT:-$CACHE/eval}
mkdir -p "$OUT"
for set in heldout-v071 heldout-v03; do
  echo "== $set"
  python -m captcha evaluate "$DATA/$set" --weights "$WEIGHTS" --json "$OUT/$set.json"
  echo
done
python -m captcha bench --weights "$WEIGHTS" --image "$(ls "$DATA"/heldout-v071/*.png | head -1)"
