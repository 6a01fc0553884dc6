#!/usr/bin/env bash
# One training round on the lent GPU machine: train.py, fed by stream.py workers drawing
# ImageCaptcha images (both releases) while it trains; run from the repo root there, after
# gpu_carry.sh prepare here (see "A round on a GPU" in README.md beside this script).
#
#   bash recipes/imagecaptcha/gpu_round.sh       # writes the round's weights in parts to $OUT
#
# MINUTES (default 8) is train.py's time budget; VAL (draws per release, default 1000), LR, BATCH, LIB, MIX ("0.3 workers,0.7.1 workers",
# default 8,6), BASE (seed base of the training draws, default 5000), FONT_SIZES (training draws
# only) and EXTRA (more train.py flags) override. Validation: 1000 draws per release from seed
# bases 5900 and 5901; build.sh's training sets use 1000 and 2000, its held-out sets 9000001/2.
set -euo pipefail
PY="${PY:-python3}"
OUT="${OUT:?the device tool sets OUT}"
LIB="${LIB:-.gpu}"
IFS=, read -r N03 N071 <<< "${MIX:-8,6}"
BASE="${BASE:-5000}"
worker() {  # worker VERSION SEED_BASE [COUNT]
  echo "$PY -I recipes/imagecaptcha/stream.py --lib $LIB/lib-$1 --base $2${3:+ --count $3}${FONT_SIZES:+ --font-sizes $FONT_SIZES}"
}
streams=()
for k in $(seq 0 $((N03 - 1))); do streams+=(--stream "$(worker 0.3 $((BASE + k)))"); done
for k in $(seq 0 $((N071 - 1))); do streams+=(--stream "$(worker 0.7.1 $((BASE + N03 + k)))"); done
FONT_SIZES="" # validation keeps the library's own font sizes
"$PY" -m recipes.imagecaptcha.carry unpack "$LIB/init" /tmp/init
"$PY" train.py "${streams[@]}" --val-stream "$(worker 0.3 5900 "${VAL:-1000}")" --val-stream "$(worker 0.7.1 5901 "${VAL:-1000}")" \
  --form joint --init /tmp/init --size 96x256 --crop 0,0.3125,1,0.6875 --batch-size "${BATCH:-256}" \
  --lr "${LR:-5e-4}" --warmup 0.08 --minutes "${MINUTES:-8}" --workers 0 --out /tmp/run ${EXTRA:-} 2>&1 \
  | tr '\r' '\n' | grep -v 'it/s' | tee "$OUT/train.log"
"$PY" -m recipes.imagecaptcha.carry pack /tmp/run "$OUT"
