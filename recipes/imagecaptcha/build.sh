#!/usr/bin/env bash
# Builds the ImageCaptcha training / held-out sets (see README.md in this folder).
#
#   bash recipes/imagecaptcha/build.sh [--workers N] [--venvs-only] [--no-train]
#
# Environment:
#   CAPTCHA_CACHE   root of venvs and data        (default: $HOME/.cache/captcha)
#   TRAIN_COUNT     images per training set       (default: 100000)
#   HELDOUT_COUNT   images per held-out set       (default: 2000)
#   CALIBRATION_COUNT images per calibration set  (default: 2000)
#   WORKERS         worker processes              (default: 2; --workers overrides)
#   PYTHON          interpreter for the venvs     (default: python3; outputs verified with CPython 3.11)
#
# Idempotent: a venv that already has the pinned packages is left alone, a data folder that
# already holds the expected number of PNGs is skipped, and a partly filled one is resumed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${CAPTCHA_CACHE:-$HOME/.cache/captcha}"
VENVS="$CACHE/venvs"
DATA="$CACHE/data/imagecaptcha"
TRAIN_COUNT="${TRAIN_COUNT:-100000}"
HELDOUT_COUNT="${HELDOUT_COUNT:-2000}"
CALIBRATION_COUNT="${CALIBRATION_COUNT:-2000}"
WORKERS="${WORKERS:-2}"
PYTHON="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
  case "$1" in
    --workers) WORKERS="$2"; shift 2 ;;
    --workers=*) WORKERS="${1#--workers=}"; shift ;;
    --venvs-only) VENVS_ONLY=1; shift ;;   # just the two library venvs (gpu_carry.sh needs no data)
    --no-train) NO_TRAIN=1; shift ;;       # held-out and calibration sets only (a minute; no training sets)
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$VENVS" "$DATA"
exec 9>"$DATA/.build.lock"
if ! flock -n 9; then
  echo "build.sh: another build.sh is already running on $DATA (lock $DATA/.build.lock)" >&2
  exit 1
fi

log() { echo "[$(date '+%F %T')] $*"; }

pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$pyver" != "3.11" ]; then
  log "warning: $PYTHON is Python $pyver; the recipe was verified with 3.11 (random's algorithms are stable, but check bytes)"
fi

# make_venv NAME REQUIREMENTS_FILE -> path of the venv's python on stdout
make_venv() {
  local venv="$VENVS/$1" req="$2" want have
  want="$(grep -E '^[A-Za-z]' "$req" | tr 'A-Z' 'a-z' | sort)"
  if [ -x "$venv/bin/python" ]; then
    have="$("$venv/bin/python" -m pip freeze --all 2>/dev/null | grep -iE '^(captcha|pillow)==' | tr 'A-Z' 'a-z' | sort || true)"
    if [ "$have" = "$want" ]; then
      log "venv $venv: ok ($(echo $have))" >&2
      echo "$venv/bin/python"; return
    fi
  fi
  log "venv $venv: creating with $PYTHON, installing $req" >&2
  "$PYTHON" -m venv --clear "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: -r "$req" >&2
  echo "$venv/bin/python"
}

# generate NAME VENV_PYTHON SEED_BASE COUNT
generate() {
  local name="$1" py="$2" base="$3" count="$4" out="$DATA/$1" have
  have=0
  [ -d "$out" ] && have="$(find "$out" -maxdepth 1 -type f -name '*.png' | wc -l)"
  if [ "$have" -eq "$count" ]; then
    log "$name: already has $count images, skipping"
    return
  fi
  if [ "$have" -gt "$count" ]; then
    log "$name: holds $have images, more than the $count asked for; delete $out to rebuild" >&2
    exit 1
  fi
  log "$name: $have/$count there, generating (seed base $base, $WORKERS worker(s))"
  # -I: isolated mode, so neither the repo nor PYTHONPATH can shadow the PyPI 'captcha' package.
  "$py" -I "$HERE/generate.py" "$out" --count "$count" --seed "$base" --workers "$WORKERS" --resume \
    --summary-json "$DATA/$name.json"
  have="$(find "$out" -maxdepth 1 -type f -name '*.png' | wc -l)"
  if [ "$have" -ne "$count" ]; then
    log "$name: expected $count images, found $have" >&2
    exit 1
  fi
}

PY071="$(make_venv imagecaptcha-0.7.1 "$HERE/requirements-0.7.1.txt")"
PY03="$(make_venv imagecaptcha-0.3 "$HERE/requirements-0.3.txt")"
if [ "${VENVS_ONLY:-0}" = 1 ]; then
  log "venvs ready: $PY071 $PY03"
  exit 0
fi

log "start: TRAIN_COUNT=$TRAIN_COUNT HELDOUT_COUNT=$HELDOUT_COUNT WORKERS=$WORKERS data=$DATA"
# Held-out sets first: they are small and then usable while the training sets are drawn.
generate heldout-v071 "$PY071" 9000001 "$HELDOUT_COUNT"
generate heldout-v03  "$PY03"  9000002 "$HELDOUT_COUNT"
# Calibration sets: fit the shipped weights' confidence (calibrate_shipped.sh), never trained on or graded.
generate calibration-v071 "$PY071" 7000001 "$CALIBRATION_COUNT"
generate calibration-v03  "$PY03"  7000002 "$CALIBRATION_COUNT"
if [ "${NO_TRAIN:-0}" = 1 ]; then
  log "done (--no-train): $DATA"
  exit 0
fi
generate train-v071   "$PY071" 1000    "$TRAIN_COUNT"
generate train-v03    "$PY03"  2000    "$TRAIN_COUNT"
log "all done: $DATA"
