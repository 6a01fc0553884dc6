#!/usr/bin/env bash
# Rebuild the shipped weights: data (build.sh), then both forms trained together on one shared
# ResNet-50 trunk (train.py --form joint: one forward/backward pass per image feeds both heads).
# Resumable: rerun after a kill and it continues from its last checkpoint.
#   bash recipes/imagecaptcha/train_shipped.sh            # from the repo root
# Then: cp $OUT/{one_go,sequential}.safetensors weights/
#
# INIT=weights continues from the shipped weights (a new one-cycle run that starts from them)
# instead of from scratch; use a new OUT for each such round.
# CROP is the band of rows the model reads: rows 80-176 of 256, where every glyph falls (the
# library centres each glyph vertically; they span rows 91-164). SIZE 96x256 reads it at full
# resolution both ways (round 5 on); rounds 1-3 used CROP=0,0.25,1,0.75 (rows 64-192, squeezed to
# 96) at SIZE=96x192, round 4 this CROP at 96x192.
set -euo pipefail
CACHE=${CAPTCHA_CACHE:-$HOME/.cache/captcha}
DATA=$CACHE/data/imagecaptcha
OUT=${OUT:-$CACHE/runs/shipped}
THREADS=${THREADS:-2}

bash "$(dirname "$0")/build.sh"

python train.py --data "$DATA/train-v071" "$DATA/train-v03" --val-fraction 0.005 --synthetic "${SYNTHETIC:-30000}" \
  --size "${SIZE:-96x256}" --crop "${CROP:-0,0.3125,1,0.6875}" --arch resnet50 --form joint --batch-size 32 --lr "${LR:-1e-3}" \
  --steps "${STEPS:-4500}" --init "${INIT:-scratch}" --eval-every "${EVAL_EVERY:-500}" --workers 0 --threads "$THREADS" \
  --seed "${SEED:-0}" --out "$OUT" --resume
