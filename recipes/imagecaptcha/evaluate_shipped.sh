#!/usr/bin/env bash
# Grade weights on the held-out sets (seeds disjoint from training; see README.md here).
#   bash recipes/imagecaptcha/evaluate_shipped.sh [WEIGHTS]     (default: weights/)
#   ENGINE=onnx PRECISION=fp32 bash ...   the engine and precision to grade with (default: auto, as users get)
# Writes $OUT/heldout-v071.json, $OUT/heldout-v03.json, $OUT/samples.json (data/) and $OUT/bench.json and prints the tables
# for the model card (python -m recipes.imagecaptcha.model_card writes it from these files).
set -euo pipefail
CACHE=${CAPTCHA_CACHE:-$HOME/.cache/captcha}
DATA=$CACHE/data/imagecaptcha
WEIGHTS=${1:-weights}
OUT=${OUT:-$CACHE/eval}
RUN=(--engine "${ENGINE:-auto}" --precision "${PRECISION:-auto}")
mkdir -p "$OUT"
for set in heldout-v071 heldout-v03; do
  echo "== $set"
  python -m captcha evaluate "$DATA/$set" --weights "$WEIGHTS" "${RUN[@]}" --json "$OUT/$set.json" --plot "$OUT/$set.png"
  echo
done
echo "== data/ (the samples shipped with the repo)"
python -m captcha evaluate data --weights "$WEIGHTS" "${RUN[@]}" --json "$OUT/samples.json"
echo
# timed once, over 256 distinct held-out images (the int8 engine re-reads doubtful ones in fp32)
python -m captcha bench --weights "$WEIGHTS" --image "$DATA/heldout-v03" --images 256 --batch-size 64 --json > "$OUT/bench.json"
cat "$OUT/bench.json"
