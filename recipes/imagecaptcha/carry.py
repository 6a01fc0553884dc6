"""Weights to and from a lent GPU machine: a weights folder <-> a few parts of one file.

The device tool carries at most 64 MiB each way, in files of at most 16 MiB back, and the two
shipped files are 104 MB. Forms trained together (train.py --form joint) share their trunk, so
one file with the trunk once and both heads is 54 MiB; `pack` writes it in 15 MiB parts and
`unpack` writes the two weights files again with the same tensors and metadata.
A folder's metrics.json travels with it.

    python -m recipes.imagecaptcha.carry pack weights .gpu/init       # here, before the call
    python -m recipes.imagecaptcha.carry unpack .gpu/init INIT_DIR     # there: train.py --init INIT_DIR
    python -m recipes.imagecaptcha.carry pack RUN_DIR $OUT             # there, after train.py
    python -m recipes.imagecaptcha.carry unpack /work/.device/N DIR    # here: DIR holds the round's weights
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load, save, save_file

FILES = {"one_go": "one_go.safetensors", "sequential": "sequential.safetensors"}
PART = "joint.safetensors.part"
PART_BYTES = 15 * 2**20


def pack(folder: Path, out: Path) -> list[Path]:
    tensors, metadata = {}, {}
    for form, name in FILES.items():
        with safe_open(str(folder / name), "pt") as f:
            metadata[form] = json.dumps(f.metadata())
            tensors.update({f"{form}.{k}": f.get_tensor(k) for k in f.keys()})
    for key in [k for k in tensors if k.startswith("sequential.trunk.")]:
        if not torch.equal(tensors[key], tensors.get("one_go" + key[len("sequential"):], torch.empty(0))):
            sys.exit(f"carry pack: the two forms in {folder} do not share their trunk ({key}); "
                     f"only weights trained with --form joint pack into one file")
        del tensors[key]
    data = save(tensors, metadata=metadata)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(PART + "*"):
        old.unlink()
    parts = []
    for k in range(math.ceil(len(data) / PART_BYTES)):
        parts.append(out / f"{PART}{k}")
        parts[-1].write_bytes(data[k * PART_BYTES: (k + 1) * PART_BYTES])
    if (folder / "metrics.json").exists():
        shutil.copyfile(folder / "metrics.json", out / "metrics.json")
    print(f"carry pack: {folder} -> {len(parts)} part(s) in {out} ({len(data) / 2**20:.1f} MiB)")
    return parts


def unpack(parts_folder: Path, out: Path) -> None:
    parts = sorted(parts_folder.glob(PART + "*"), key=lambda p: int(p.name[len(PART):]))
    if not parts:
        sys.exit(f"carry unpack: no {PART}* files in {parts_folder}")
    data = b"".join(p.read_bytes() for p in parts)
    header = int.from_bytes(data[:8], "little")  # safetensors: 8-byte length, then the JSON header
    metadata = json.loads(data[8: 8 + header])["__metadata__"]
    tensors = load(data)
    out.mkdir(parents=True, exist_ok=True)
    for form, name in FILES.items():
        state = {k[len(form) + 1:]: v for k, v in tensors.items() if k.startswith(form + ".")}
        if form == "sequential":
            state.update({k[len("one_go."):]: v for k, v in tensors.items() if k.startswith("one_go.trunk.")})
        save_file(state, str(out / name), metadata=json.loads(metadata[form]))
        print(f"carry unpack: {out / name}")
    if (parts_folder / "metrics.json").exists() and (parts_folder / "metrics.json").resolve() != (out / "metrics.json").resolve():
        shutil.copyfile(parts_folder / "metrics.json", out / "metrics.json")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["pack", "unpack"])
    p.add_argument("source", type=Path, help="pack: a weights folder; unpack: a folder of parts")
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    if args.command == "pack":
        pack(args.source, args.out)
    else:
        unpack(args.source, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
