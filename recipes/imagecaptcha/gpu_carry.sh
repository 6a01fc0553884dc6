#!/usr/bin/env bash
# Lay out (and afterwards undo) what a GPU round sends to the device tool's machine; see
# "A round on a GPU" in README.md beside this script.
#
#   bash recipes/imagecaptcha/gpu_carry.sh prepare   # .gpu/ gets the two library folders and the
#                                                    # packed weights; weights/*.safetensors leave the tree
#   ... device tool: run(command="python3 recipes/imagecaptcha/gpu_round.py train ...", carry=[".gpu"])
#   bash recipes/imagecaptcha/gpu_carry.sh restore   # the shipped weights back, as committed
#
# Why the weights leave the tree: the device tool sends tracked files too, at most 64 MiB in all,
# and the two shipped files are 104 MB; the packed file (trunk once, 54 MiB) goes instead.
# They wait in $CAPTCHA_CACHE/weights-aside (default ~/.cache/captcha/weights-aside).
set -euo pipefail
cd "$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)"
CACHE="${CAPTCHA_CACHE:-$HOME/.cache/captcha}"
ASIDE="$CACHE/weights-aside"
PY="${PY:-python}"
FILES=(one_go.safetensors sequential.safetensors)

case "${1:-}" in
  prepare)
    if [ -e "$ASIDE/${FILES[0]}" ]; then
      echo "gpu_carry.sh: $ASIDE already holds weights; run 'restore' first" >&2
      exit 1
    fi
    bash recipes/imagecaptcha/build.sh --venvs-only
    exclude="$(git rev-parse --git-path info/exclude)"
    mkdir -p "$(dirname "$exclude")"
    grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
    rm -rf .gpu/lib-0.3 .gpu/lib-0.7.1
    for version in 0.3 0.7.1; do
      mkdir -p ".gpu/lib-$version"
      cp -r "$CACHE"/venvs/imagecaptcha-"$version"/lib/python3.*/site-packages/captcha ".gpu/lib-$version/"
    done
    find .gpu -name __pycache__ -prune -exec rm -rf {} +
    "$PY" recipes/imagecaptcha/gpu_round.py pack weights --out .gpu/init.safetensors
    mkdir -p "$ASIDE"
    for f in "${FILES[@]}"; do
      git rm --cached -q "weights/$f"
      mv "weights/$f" "$ASIDE/$f"
    done
    echo "gpu_carry.sh: .gpu/ holds $(du -sh .gpu | cut -f1); the weights wait in $ASIDE."
    echo "Run the round with carry=[\".gpu\"], then: bash $0 restore"
    ;;
  restore)
    for f in "${FILES[@]}"; do
      if [ -e "$ASIDE/$f" ]; then
        mv "$ASIDE/$f" "weights/$f"
      fi
    done
    git reset -q -- "${FILES[@]/#/weights/}"
    git status --short -- weights/
    ;;
  *)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
