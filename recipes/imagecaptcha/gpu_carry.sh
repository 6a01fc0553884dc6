#!/usr/bin/env bash
# Lay out (and afterwards undo) what a GPU round sends to the device tool's machine; see
# "A round on a GPU" in README.md beside this script.
#
#   bash recipes/imagecaptcha/gpu_carry.sh prepare   # .gpu/: the library's two package folders and the
#                                                    # shipped weights in parts; weights/*.safetensors leave the tree
#   ... device tool: run(command="bash recipes/imagecaptcha/gpu_round.sh", carry=[".gpu"])
#   bash recipes/imagecaptcha/gpu_carry.sh restore   # the shipped weights back, as committed
#
# Why the weights leave the tree: the device tool sends tracked files too, at most 64 MiB in all,
# and the two shipped files are 104 MB; packed (trunk once, 54 MiB) they go in .gpu/ instead.
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
    grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
    rm -rf .gpu && mkdir -p .gpu
    for version in 0.3 0.7.1; do
      mkdir -p ".gpu/lib-$version"
      cp -r "$CACHE"/venvs/imagecaptcha-"$version"/lib/python3.*/site-packages/captcha ".gpu/lib-$version/"
    done
    find .gpu -name __pycache__ -prune -exec rm -rf {} +
    "$PY" -m recipes.imagecaptcha.carry pack weights .gpu/init
    mkdir -p "$ASIDE"
    for f in "${FILES[@]}"; do
      git rm --cached -q "weights/$f"
      mv "weights/$f" "$ASIDE/$f"
    done
    echo "gpu_carry.sh: .gpu/ holds $(du -sh .gpu | cut -f1); the weights wait in $ASIDE. Afterwards: bash $0 restore"
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
    sed -n '2,11p' "$0"
    exit 2
    ;;
esac
