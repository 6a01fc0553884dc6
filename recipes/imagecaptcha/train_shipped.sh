#!/usr/bin/env bash
# Rebuild the shipped weights: data (build.sh), then one-go, then sequential from the one-go trunk.
# Resumable: rerun after a kill and each stage continues from its last checkpoint.
#   bash recipes/imagecaptcha/train_shipped.sh            # from the repo root
# Then: cp $OUT/{one_go,sequential}.safetensors weights/
set -euo pipefail
CACHE=${CAPTCHA_CACHE:-$HOME/.cache/captcha}
DATA=$CACHE/data/imagecaptcha
OUT=${OUT:-$CACHE/runs/shipped}
THREADS=${THREADS:-2}

bash "$(dirname "$0")/build.sh"

COMMON=(--data "$DATA/train-v071" "$DATA/train-v03" --val-fraction 0.01 --synthetic 50000
        --size 96x192 --crop 0,0.25,1,0.75 --arch resnet50 --batch-size 32 --lr 1e-3
        --eval-every 2000 --workers 0 --threads "$THREADS" --seed 0 --out "$OUT" --resume)

python train.py "${COMMON[@]}" --form one-go --steps "${ONE_GO_STEPS:-18000}"
python train.py "${COMMON[@]}" --form sequential --steps "${SEQUENTIAL_STEPS:-12000}" --init "$OUT"
