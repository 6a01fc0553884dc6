#!/usr/bin/env python3
"""One training round on a GPU, fed by ImageCaptcha images drawn while it trains.

The CPU recipe (train_shipped.sh) reads 200k PNGs that build.sh drew beforehand. A GPU reads
images far faster than that, and the lent GPU machine has no package registry and a
time-boxed lease. So this script:
  * starts stream.py workers (``python -I``, one per CPU core) on the PyPI library's own
    ``captcha`` package folders, carried beside the repo: 0.3 and 0.7.1, as the CPU recipe;
  * keeps every drawn image in a buffer on the GPU and samples batches from all of it,
    with the same small random affine as captcha.data.augment, done on the GPU;
  * schedules the learning rate (one cycle) over a time budget instead of a step count, so
    the round ends, and writes its weights, inside the lease;
  * starts from, and writes, the two shipped forms packed as one file (the trunk they share
    stored once), split in parts small enough for the device tool to send back.

    # here: the shipped weights -> one file to carry (trunk once)
    python recipes/imagecaptcha/gpu_round.py pack weights --out .gpu/init.safetensors
    # on the GPU machine
    python recipes/imagecaptcha/gpu_round.py train --init .gpu/init.safetensors \\
        --lib 0.3=.gpu/lib-0.3 --lib 0.7.1=.gpu/lib-0.7.1 --seconds 420 --out $OUT
    # here: the parts -> DIR/one_go.safetensors, DIR/sequential.safetensors (and its metrics.json)
    python recipes/imagecaptcha/gpu_round.py unpack RUN_DIR --out DIR

Seed bases: training workers draw from --base + k (default 5000 on), validation from 5900 on;
build.sh's training sets use 1000 and 2000, the held-out sets 9000001 and 9000002.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from captcha.models import Joint  # noqa: E402
from captcha.spec import MEAN, STD, CaptchaSpec  # noqa: E402
from captcha.recognizer import Recognizer  # noqa: E402
from captcha.weights import FILENAMES, save_weights  # noqa: E402
from train import loss_fn  # noqa: E402

STREAM = Path(__file__).resolve().with_name("stream.py")
PART_BYTES = 15 * 2**20  # the device tool sends back files of at most 16 MiB
PARTS = "joint.safetensors.part"


# ----------------------------------------------------------------------------- pack / unpack
def joint_state(model: Joint) -> dict:
    """fp16 tensors of a Joint model, its shared trunk once (as one_go.trunk.*)."""
    return {k: (v.half() if v.is_floating_point() else v).contiguous().cpu()
            for k, v in model.state_dict().items() if not k.startswith("sequential.trunk.")}


def joint_metadata(model: Joint, arch: str, **extra) -> dict:
    return {"arch": arch, "spec": model.spec.to_json(), "config": json.dumps(model.config), **extra}


def build_joint(metadata: dict, state: dict) -> Joint:
    model = Joint(CaptchaSpec.from_json(metadata["spec"]), metadata["arch"], **json.loads(metadata["config"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    left = [k for k in missing if not k.startswith("sequential.trunk.")]
    if left or unexpected:
        sys.exit(f"joint weights do not fit the model: missing {left[:5]}, unexpected {unexpected[:5]}")
    return model


def pack(args) -> int:
    """The two shipped files -> one Joint file (they must share their trunk, as train.py --form joint makes them)."""
    folder = Path(args.weights)
    rec = Recognizer.from_pretrained(folder)
    if set(rec.models) != set(FILENAMES) or not rec.shared_trunk:
        sys.exit(f"pack: the two forms in {folder} do not share their trunk (or one is missing); "
                 "pack only works for jointly trained weights")
    one_go, sequential, info = rec.models["one_go"], rec.models["sequential"], rec.infos["one_go"]
    config = dict(output_stride=info.config["output_stride"], one_go_channels=info.config["head_channels"],
                  dropout=info.config["dropout"])
    model = Joint(info.spec, info.arch, **config)
    model.one_go.load_state_dict(one_go.state_dict())
    model.sequential.load_state_dict(sequential.state_dict())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = save_bytes(joint_state(model), metadata=joint_metadata(model, info.arch, source=str(folder)))
    out.write_bytes(data)
    print(f"pack: {folder} -> {out} ({len(data) / 2**20:.1f} MiB)")
    return 0


def unpack(args) -> int:
    """Parts written by `train` -> the two weights files the package loads."""
    run = Path(args.run)
    parts = sorted(run.glob(PARTS + "*"), key=lambda p: int(p.name[len(PARTS):]))
    if not parts:
        sys.exit(f"unpack: no {PARTS}* files in {run}")
    data = b"".join(p.read_bytes() for p in parts)
    header = int.from_bytes(data[:8], "little")  # safetensors: 8-byte length, then the JSON header
    metadata = json.loads(data[8: 8 + header])["__metadata__"]
    model = build_joint(metadata, load_bytes(data))
    summary = json.loads(metadata.get("summary", "{}"))
    for part in ("one_go", "sequential"):
        shown = {k: v for k, v in summary.items() if k != "val"}
        shown.update(summary.get("val", {}).get(part, {}))
        path = save_weights(Path(args.out) / FILENAMES[part], model.part(part), part, metadata["arch"], summary=shown)
        print(f"unpack: {path}")
    metrics = run / "metrics.json"  # the round's history, which model_card.py reads beside the weights
    if metrics.exists() and metrics.resolve() != (Path(args.out) / "metrics.json").resolve():
        (Path(args.out) / "metrics.json").write_bytes(metrics.read_bytes())
    return 0


# ----------------------------------------------------------------------------- data feed
class Feed:
    """stream.py workers -> a uint8 image buffer and a label buffer on the device."""

    def __init__(self, spec: CaptchaSpec, rows: tuple[int, int], capacity: int, device, chunk: int = 16):
        self.spec, self.rows, self.device, self.chunk = spec, rows, device, chunk
        self.shape = (rows[1] - rows[0], 256, 3)
        self.record = spec.length + math.prod(self.shape)
        self.capacity = max(chunk, capacity // chunk * chunk)
        self.images = torch.empty((self.capacity, *self.shape), dtype=torch.uint8, device=device)
        self.labels = torch.empty((self.capacity, spec.length), dtype=torch.uint8, device=device)
        self.lookup = torch.full((256,), 255, dtype=torch.uint8)
        for i, c in enumerate(spec.alphabet):
            self.lookup[ord(c)] = i
        self.lock = threading.Lock()
        self.written = 0  # records claimed
        self.ready = 0    # records copied in full (what batches may sample)
        self.procs, self.errors = [], []
        self.copy_stream = torch.cuda.Stream(device) if torch.device(device).type == "cuda" else None

    def stream_context(self):
        return torch.cuda.stream(self.copy_stream) if self.copy_stream is not None else contextlib.nullcontext()

    def start(self, lib: str, base: int, count: int = 0, into: list | None = None, font_sizes: str | None = None):
        """One worker; its records go to the ring buffer, or (count > 0, `into`) to a list."""
        cmd = [sys.executable, "-I", str(STREAM), "--lib", lib, "--base", str(base),
               "--rows", f"{self.rows[0]},{self.rows[1]}", "--alphabet", self.spec.alphabet,
               "--length", str(self.spec.length)]
        if count:
            cmd += ["--count", str(count)]
        if font_sizes:
            cmd += ["--font-sizes", font_sizes]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, bufsize=0)
        self.procs.append(proc)
        thread = threading.Thread(target=self._read, args=(proc, count, into), daemon=True)
        thread.start()
        return thread

    def _decode(self, raw: bytearray, n: int):
        flat = torch.frombuffer(raw, dtype=torch.uint8).view(n, self.record)
        labels = self.lookup[flat[:, : self.spec.length].long()]
        images = flat[:, self.spec.length:].reshape(n, *self.shape)
        return images, labels

    def _read(self, proc, count, into):
        got = 0
        try:
            while not count or got < count:
                want = self.chunk if not count else min(self.chunk, count - got)
                raw = _read_exactly(proc.stdout, self.record * want)
                if raw is None:
                    if not count:
                        self.errors.append(f"worker {proc.args[4:8]} ended (exit {proc.poll()})")
                    break
                images, labels = self._decode(raw, want)
                got += want
                if into is not None:
                    into.append((images, labels))
                    continue
                with self.lock, self.stream_context():
                    # The copy runs on a side stream (copy_ then waits for that stream only, not
                    # for the training kernels queued on the default one); a slot becomes
                    # samplable once its copy is done.
                    slot = self.written % self.capacity
                    self.images[slot: slot + want].copy_(images)
                    self.labels[slot: slot + want].copy_(labels)
                    self.written += want
                    self.ready = min(self.capacity, self.written)
        except Exception as e:  # pragma: no cover - reported by the trainer
            self.errors.append(f"reader: {e!r}")

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()


def _read_exactly(stream, n: int):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            return None
        got += k
    return buf


def random_affine(x: torch.Tensor) -> torch.Tensor:
    """captcha.data.augment on a batch [B, 3, H, W] (pixel units of the 256-wide image): scale
    within 3%, tilt within 0.05 rad, shift within 4% across and 3% down (the band has about
    11 rows spare above and below the glyphs), edges repeated."""
    b, _, h, w = x.shape
    u = lambda lo, hi: torch.empty(b, device=x.device).uniform_(lo, hi)
    scale, angle = u(0.97, 1.03), u(-0.05, 0.05)
    tx, ty = u(-0.04, 0.04) * 256, u(-0.03, 0.03) * 256
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin * h / w, 2 * tx / w], 1),
                         torch.stack([sin * w / h, cos, 2 * ty / h], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ----------------------------------------------------------------------------- train
def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def to_input(images: torch.Tensor, augment: bool) -> torch.Tensor:
    x = images.permute(0, 3, 1, 2).float().div_(255)
    if augment:
        x = random_affine(x)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def evaluate(model, sets: dict, device, bf16: bool) -> dict:
    model.eval()
    result = {}
    for name, (images, labels) in sets.items():
        strings, chars = torch.zeros(2), torch.zeros(2)
        for i in range(0, len(images), 500):
            x = to_input(images[i: i + 500].to(device), augment=False)
            y = labels[i: i + 500].to(device).long()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            pred = logits.argmax(-1).view(len(y), 2, -1)
            hit = (pred == y[:, None]).cpu()
            strings += hit.all(2).sum(0)
            chars += hit.float().mean(2).sum(0)
        n = len(images)
        result[name] = {form: {"string_accuracy": round(strings[k].item() / n, 5),
                               "char_accuracy": round(chars[k].item() / n, 5)}
                        for k, form in enumerate(("one_go", "sequential"))}
    model.train()
    return result


def write_parts(out: Path, model: Joint, metadata: dict):
    data = save_bytes(joint_state(model), metadata=metadata)
    for old in out.glob(PARTS + "*"):
        old.unlink()
    for k in range(math.ceil(len(data) / PART_BYTES)):
        tmp = out / f".part{k}.tmp"
        tmp.write_bytes(data[k * PART_BYTES: (k + 1) * PART_BYTES])
        os.replace(tmp, out / f"{PARTS}{k}")
    return len(data)


def train(args) -> int:
    t0 = time.time()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        log(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, {os.cpu_count()} CPU cores")
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with safe_open(args.init, "pt") as f:
        metadata = f.metadata()
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    model = build_joint(metadata, state).to(device).to(memory_format=torch.channels_last)
    spec = model.spec
    rows = (round(spec.crop[1] * 256), round(spec.crop[3] * 256))
    if (rows[1] - rows[0], 256) != (spec.height, spec.width) or spec.crop[0] != 0 or spec.crop[2] != 1:
        sys.exit(f"train: the feed sends full-resolution rows of a 256-wide image; {spec.describe()} needs a resize")
    log(f"init {args.init}: {metadata['arch']} joint, {spec.describe()}")

    libs = [item.split("=", 1) for item in args.lib]
    workers = args.workers or max(len(libs), (os.cpu_count() or 2) - 2)
    weights = [float(w) for w in args.mix.split(",")] if args.mix else [1.0] * len(libs)
    counts = [max(1, round(workers * w / sum(weights))) for w in weights]
    record = spec.length + spec.height * 256 * 3
    capacity = args.buffer
    if not capacity:
        free = torch.cuda.mem_get_info()[0] if device.type == "cuda" else 8 * 2**30
        capacity = int(max(free - args.reserve_gib * 2**30, 2**30) // record)
    feed = Feed(spec, rows, capacity, device)
    log(f"buffer: {feed.capacity} images ({feed.capacity * record / 2**30:.1f} GiB)")

    val_sets, val_threads = {}, []
    for j, (name, lib) in enumerate(libs):
        chunks = []
        val_threads.append((name, chunks, feed.start(lib, args.val_base + j, count=args.val, into=chunks)))
    k = 0
    for (name, lib), n in zip(libs, counts):
        for _ in range(n):
            feed.start(lib, args.base + k, font_sizes=args.font_sizes)  # validation keeps the library's own
            k += 1
    log(f"workers: {', '.join(f'{n} x captcha {name}' for (name, _), n in zip(libs, counts))}, "
        f"seed bases {args.base}..{args.base + k - 1}{f', font sizes {args.font_sizes}' if args.font_sizes else ''}; "
        f"validation {args.val} per version from base {args.val_base}")
    for name, chunks, thread in val_threads:
        thread.join(timeout=120)
        got = sum(len(c[0]) for c in chunks)
        if got < args.val:
            feed.stop()
            sys.exit(f"train: validation worker for captcha {name} drew {got} of {args.val} images; "
                     f"errors: {feed.errors}")
        val_sets[name] = (torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks]))

    bf16 = device.type in ("cuda", "cpu")
    history = [{"seconds": 0, "step": 0, "seen": 0, "val": evaluate(model, val_sets, device, bf16)}]
    log(f"start: {json.dumps(history[0]['val'])}")

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, fused=device.type == "cuda")
    while feed.ready < args.batch_size * 4:
        if feed.errors:
            sys.exit(f"train: {feed.errors}")
        time.sleep(0.2)

    start = time.time()
    budget = args.seconds
    if args.deadline:
        budget = min(budget, args.deadline - (start - t0) - 25)
    log(f"training for {budget:.0f} s: batch {args.batch_size}, peak lr {args.lr}, warm-up {args.warmup:.0%}")
    step, seen, last_eval, last_log, loss_sum, loss_n = 0, 0, start, start, 0.0, 0
    window = [0.0, 0]  # loss samples since the last evaluation, for the history
    lr_of = lambda frac: args.lr * (0.05 + 0.95 * frac / args.warmup if frac < args.warmup else
                                    0.5 * (1 + math.cos(math.pi * (frac - args.warmup) / (1 - args.warmup))) * 0.995 + 0.005)
    meta = joint_metadata(model, metadata["arch"])
    while True:
        elapsed = time.time() - start
        if elapsed >= budget:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_of(elapsed / budget)
        n = feed.ready
        idx = torch.randint(0, n, (args.batch_size,), device=device)
        x = to_input(feed.images[idx], augment=True)
        y = feed.labels[idx].long()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = loss_fn(logits, y, args.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optimizer.step()
        step, seen = step + 1, seen + args.batch_size
        if step % 25 == 0:
            value = loss.item()
            loss_sum, loss_n = loss_sum + value, loss_n + 1
            window = [window[0] + value, window[1] + 1]
        now = time.time()
        if now - last_log > 30:
            log(f"step {step}: {seen / (now - start):.0f} img/s, drawn {feed.written} "
                f"({feed.written / (now - start):.0f}/s), loss {loss_sum / max(loss_n, 1):.4f}, lr {lr_of(elapsed / budget):.2e}")
            loss_sum, loss_n, last_log = 0.0, 0, now
            if feed.errors:
                log(f"feed errors: {feed.errors[:3]}")
        if now - last_eval > args.eval_seconds:
            entry = {"seconds": round(now - start), "step": step, "seen": seen, "drawn": feed.written,
                     "train_loss": round(window[0] / max(window[1], 1), 5), "val": evaluate(model, val_sets, device, bf16)}
            window = [0.0, 0]
            history.append(entry)
            log(f"eval: {json.dumps(entry)}")
            last_eval = now
            if (now - start) / budget > 0.5:  # a fallback in case the lease ends first
                write_parts(out, model, {**meta, "summary": json.dumps({"partial": True, "steps": step})})

    seconds = time.time() - start
    final = evaluate(model, val_sets, device, bf16)
    history.append({"seconds": round(seconds), "step": step, "seen": seen, "drawn": feed.written,
                    "train_loss": round(window[0] / max(window[1], 1), 5), "val": final})
    feed.stop()
    log(f"final after {step} steps, {seen} samples, {feed.written} drawn, {seconds:.0f} s: {json.dumps(final)}")
    val_mean = {form: {m: round(sum(final[v][form][m] for v in final) / len(final), 5)
                       for m in ("string_accuracy", "char_accuracy")} for form in ("one_go", "sequential")}
    summary = {"data": f"{feed.written} ImageCaptcha images drawn during training "
                       f"({', '.join(f'{n} worker(s) of captcha {name}' for (name, _), n in zip(libs, counts))}, "
                       f"seed bases {args.base}..{args.base + k - 1}); validation: {args.val} per version",
               "steps": step, "batch_size": args.batch_size, "samples_seen": seen, "init": metadata.get("source", args.init),
               "trained": "joint (gpu_round.py)", "precision": "bf16" if bf16 else "fp32",
               "seconds": round(seconds), "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "val": {form: {"val_string_accuracy": v["string_accuracy"], "val_char_accuracy": v["char_accuracy"],
                              "val_count": args.val * len(final)} for form, v in val_mean.items()}}
    size = write_parts(out, model, {**meta, "summary": json.dumps(summary)})
    (out / "metrics.json").write_text(json.dumps({"args": vars(args), "summary": summary, "history": history}, indent=1))
    log(f"wrote {size / 2**20:.1f} MiB in {math.ceil(size / PART_BYTES)} part(s) to {out} ({time.time() - t0:.0f} s in all)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("pack", help="two weights files -> one joint file")
    s.add_argument("weights", help="folder with one_go.safetensors and sequential.safetensors")
    s.add_argument("--out", required=True)
    s = sub.add_parser("unpack", help="joint parts -> two weights files")
    s.add_argument("run", help="folder with joint.safetensors.part0, part1 ...")
    s.add_argument("--out", required=True)
    s = sub.add_parser("train", help="one round, time-boxed")
    s.add_argument("--init", required=True, help="a joint file made by pack (or by an earlier train)")
    s.add_argument("--lib", action="append", required=True, metavar="VERSION=DIR",
                   help="a folder holding that release's captcha/ package; repeat per version")
    s.add_argument("--mix", help="workers per --lib as weights, e.g. 4,3 (default equal)")
    s.add_argument("--workers", type=int, help="training draw workers in all (default: CPU cores - 2)")
    s.add_argument("--font-sizes", help="training draws only: the library's font_sizes, e.g. 42,42,50,56 to draw "
                   "half the glyphs at 42, where most misreadings are (error_factors.py); validation keeps 42,50,56")
    s.add_argument("--seconds", type=float, default=420, help="training time (the schedule's length)")
    s.add_argument("--deadline", type=float, help="seconds from start by which everything must be written")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--lr", type=float, default=5e-4)
    s.add_argument("--warmup", type=float, default=0.08)
    s.add_argument("--weight-decay", type=float, default=0.05)
    s.add_argument("--label-smoothing", type=float, default=0.05)
    s.add_argument("--buffer", type=int, help="images kept on the device (default: all free memory but --reserve-gib)")
    s.add_argument("--reserve-gib", type=float, default=30)
    s.add_argument("--val", type=int, default=1000, help="validation images per version")
    s.add_argument("--base", type=int, default=5000)
    s.add_argument("--val-base", type=int, default=5900)
    s.add_argument("--eval-seconds", type=float, default=60)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device")
    s.add_argument("--out", required=True)
    args = p.parse_args(argv)
    return {"pack": pack, "unpack": unpack, "train": train}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
