"""Train the one-go and/or sequential CAPTCHA readers on a folder of images named by their answers.

    python train.py --data DIR --form both                      # 5 chars of 0-9A-Za-z
    python train.py --data DIR --form joint                     # both forms on one shared trunk, half the compute
    python train.py --synthetic 50000 --form one-go --steps 2000 # no data: generated CAPTCHAs
    torchrun --nproc_per_node 4 train.py --data DIR ...          # several processes / GPUs (DDP)

Writes OUT/one_go.safetensors, OUT/sequential.safetensors (best by validation full-string
accuracy), OUT/metrics.json, and resumable checkpoints in OUT/checkpoints/ (--resume).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, Sampler
from tqdm import tqdm

from captcha.data import FolderDataset, SyntheticDataset, scan_folder, split_samples
from captcha.errors import CaptchaError, WeightsError
from captcha.models import build_model, feature_shape, form_name
from captcha.recognizer import bf16_is_fast
from captcha.spec import DEFAULT_ALPHABET, DEFAULT_HEIGHT, DEFAULT_LENGTH, CaptchaSpec
from captcha.weights import FILENAMES, find_weights, load_weights, save_weights


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", type=Path, nargs="+", help="folder(s) of images named by their answers (abc12.png, abc12_2.png)")
    g.add_argument("--val", type=Path, help="separate validation folder (default: a split of --data)")
    g.add_argument("--val-fraction", type=float, default=0.1, help="share of --data labels held out (default 0.1)")
    g.add_argument("--split-seed", type=int, default=0,
                   help="which labels --val-fraction holds out; independent of --seed so that rounds that "
                        "continue one another (--init) never validate on what an earlier round trained on")
    g.add_argument("--skip-invalid", action="store_true", help="skip files whose names are not valid labels")
    g.add_argument("--synthetic", type=int, default=0, metavar="N", help="train on N generated CAPTCHAs (added to --data if both)")
    g.add_argument("--synthetic-val", type=int, default=1000, metavar="N", help="generated validation CAPTCHAs when there is no --data")
    g.add_argument("--fonts", nargs="+", help="TTF files or folders for generated CAPTCHAs (default: DejaVu)")
    g.add_argument("--no-augment", dest="augment", action="store_false", help="turn off the small random affine")
    g.add_argument("--workers", type=int, default=2, help="data-loading processes per training process")
    g = p.add_argument_group("CAPTCHA")
    g.add_argument("--alphabet", default=DEFAULT_ALPHABET, help="characters a CAPTCHA may contain")
    g.add_argument("--length", type=int, default=DEFAULT_LENGTH, help="characters per CAPTCHA")
    g.add_argument("--size", default=str(DEFAULT_HEIGHT), help="model input: N (square) or HxW, e.g. 96x192")
    g.add_argument("--crop", default="0,0,1,1", help="part of each image the model reads, as fractions "
                   "left,top,right,bottom (e.g. 0,0.25,1,0.75 for text centred vertically)")
    g = p.add_argument_group("model and schedule")
    g.add_argument("--form", default="both", choices=["one-go", "sequential", "both", "joint"],
                   help="both: two models, one after the other; joint: one trunk with both heads, trained "
                        "together (one pass per image instead of two; the two files share their trunk)")
    g.add_argument("--arch", default="resnet50", help="any timm CNN (default resnet50)")
    g.add_argument("--init", default="scratch", help="scratch, imagenet (timm download), or a weights folder/file to fine-tune")
    g.add_argument("--epochs", type=float, help="passes over the training data (default 10)")
    g.add_argument("--steps", type=int, help="optimizer steps per form (instead of --epochs)")
    g.add_argument("--batch-size", type=int, default=32, help="per process")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the one-cycle schedule")
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--label-smoothing", type=float, default=0.05)
    g.add_argument("--warmup", type=float, default=0.1, help="share of steps spent warming up")
    g = p.add_argument_group("run")
    g.add_argument("--out", type=Path, default=Path("runs/captcha"), help="where weights, metrics and checkpoints go")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/ if present")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--eval-every", type=int, help="validate every N steps (default: every epoch)")
    g.add_argument("--checkpoint-minutes", type=float, default=10.0, help="also checkpoint this often")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), fp32 elsewhere")
    g.add_argument("--threads", type=int, help="torch CPU threads per process")
    args = p.parse_args(argv)
    if args.epochs is not None and args.steps is not None:
        p.error("give --epochs or --steps, not both")
    if args.data is None and not args.synthetic:
        p.error("give --data DIR (images named by their answers) or --synthetic N (generated CAPTCHAs)")
    try:
        size = [int(v) for v in args.size.lower().split("x")]
        args.crop = tuple(float(v) for v in args.crop.split(","))
    except ValueError:
        p.error("--size is N or HxW (e.g. 128 or 96x192); --crop is four fractions, e.g. 0,0.25,1,0.75")
    args.height, args.width = size[0], size[-1]
    return args


# ----------------------------------------------------------------------------- setup
class Runtime:
    """Process group, device and precision: everything that differs between 1 CPU and 8 GPUs."""

    def __init__(self, args):
        self.distributed = "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
        want = args.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want == "cuda" and self.distributed:
            want = f"cuda:{local_rank}"
        self.device = torch.device(want)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        else:
            torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // local_world))
        if self.distributed:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        # bf16 pays on CUDA and on CPUs with bf16 units; an AVX2-only CPU emulates it, slower than fp32.
        self.bf16 = args.precision == "bf16" or (args.precision == "auto" and (
            self.device.type == "cuda" or (self.device.type == "cpu" and bf16_is_fast())))
        self.main = self.rank == 0

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def all_sum(self, *values: float) -> list[float]:
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def print(self, *a, **k):
        if self.main:
            tqdm.write(" ".join(str(x) for x in a), **k)


class EpochSampler(Sampler):
    """A seeded permutation per epoch, this rank's share of it, from `start` on (for mid-epoch resume)."""

    def __init__(self, size: int, seed: int, rank: int, world: int, shuffle: bool = True):
        self.size, self.seed, self.rank, self.world, self.shuffle = size, seed, rank, world, shuffle
        self.epoch, self.start = 0, 0
        self.per_rank = math.ceil(size / world) if shuffle else len(range(rank, size, world))

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
            order += order[: self.per_rank * self.world - self.size]  # equal shares for DDP
        else:
            order = list(range(self.size))
        return iter(order[self.rank::self.world][self.start:])

    def __len__(self):
        return max(0, self.per_rank - self.start)


def make_datasets(args, spec: CaptchaSpec, rt: Runtime):
    """(train dataset, validation dataset, a line describing the data)."""
    parts, val, notes = [], None, []
    if args.data:
        samples = [s for folder in args.data for s in scan_folder(folder, spec, args.skip_invalid, warn=rt.print)]
        if args.val:
            train_samples, val_samples = samples, scan_folder(args.val, spec, skip_invalid=args.skip_invalid, warn=rt.print)
        else:
            train_samples, val_samples = split_samples(samples, args.val_fraction, seed=args.split_seed)
        if not train_samples:
            raise CaptchaError(f"{' '.join(map(str, args.data))}: nothing left to train on after the validation "
                               f"split; add images or use --val")
        parts.append(FolderDataset(train_samples, spec, augment=args.augment, seed=args.seed))
        val = FolderDataset(val_samples, spec) if val_samples else None
        notes.append(f"{len(train_samples)} images from {', '.join(str(d) for d in args.data)}")
    if args.synthetic:
        parts.append(SyntheticDataset(args.synthetic, spec, seed=args.seed, fonts=args.fonts, augment=args.augment))
        notes.append(f"{args.synthetic} generated (seed {args.seed})")
    if val is None:  # generated validation images from a seed no training image uses
        val = SyntheticDataset(args.synthetic_val, spec, seed=args.seed + 7_919_000, fonts=args.fonts)
        notes.append(f"validation: {args.synthetic_val} generated (seed {args.seed + 7_919_000})")
    else:
        notes.append(f"validation: {len(val)} images")
    train = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    return train, val, "; ".join(notes)


def set_epoch(dataset, epoch: int):
    for d in getattr(dataset, "datasets", [dataset]):
        d.epoch = epoch


def init_from(model, source: str, form: str, spec: CaptchaSpec, arch: str, rt: Runtime):
    """Fine-tune start: the whole model if it matches, else just its trunk (new alphabet or length)."""
    if form == "joint":  # each head from its own file; the shared trunk ends up as the sequential file's
        for part in ("one_go", "sequential"):
            init_from(model.part(part), source, part, spec, arch, rt)
        return
    path = Path(source)
    files = find_weights(path) if path.is_dir() else ({"file": path} if path.is_file() else {})
    if not files:
        raise WeightsError(f"--init {source}: neither a weights folder nor a .safetensors file")
    file = files.get(form) or next(iter(files.values()))
    donor, info = load_weights(file)
    if info.arch != arch:
        raise WeightsError(f"--init {file}: holds a {info.arch} model, but --arch is {arch}")
    state = donor.state_dict()
    same_head = info.form == form and info.config == getattr(model, "config", info.config)
    if same_head and info.spec == spec:
        model.load_state_dict(state)
        rt.print(f"init {form}: all weights from {file}")
    elif same_head and (info.spec.alphabet, info.spec.length) == (spec.alphabet, spec.length):
        model.load_resized(state, feature_shape(donor.trunk, info.spec)[1:])  # new input size or crop
        rt.print(f"init {form}: all weights from {file}, made for {info.spec.describe()}; head fitted to this input")
    else:
        trunk = {k[len("trunk."):]: v for k, v in state.items() if k.startswith("trunk.")}
        model.trunk.load_state_dict(trunk)
        rt.print(f"init {form}: trunk from {file} ({info.form}, {info.spec.describe()}); new head")


# ----------------------------------------------------------------------------- train / evaluate
def loss_fn(logits, targets, smoothing):
    """Cross-entropy per character; a joint model's logits hold both forms, so targets are repeated."""
    targets = targets.repeat(1, logits.shape[1] // targets.shape[1])
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), label_smoothing=smoothing)


def parts_of(form: str) -> list[str]:
    """The forms a trained model holds: a joint model holds both."""
    return ["one_go", "sequential"] if form == "joint" else [form]


def hits(logits, targets) -> torch.Tensor:
    """[B, forms, length] booleans: which characters each form read right."""
    pred = logits.argmax(-1).view(len(targets), -1, targets.shape[1])
    return pred == targets[:, None]


@torch.no_grad()
def evaluate(model, loader, rt: Runtime, parts: list[str]) -> dict:
    """Full-string and per-character accuracy on the validation set (summed over ranks).

    With two parts (joint), each form's accuracies are under its name and the top-level figures
    are their mean, which picks the best checkpoint.
    """
    model.eval()
    strings, chars, count = [0.0] * len(parts), [0.0] * len(parts), 0
    for x, y in loader:
        x = x.to(rt.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(rt.device)
        with rt.autocast():
            hit = hits(model(x), y)
        for i in range(len(parts)):
            strings[i] += hit[:, i].all(1).sum().item()
            chars[i] += hit[:, i].float().mean(1).sum().item()
        count += len(y)
    model.train()
    *totals, count = rt.all_sum(*strings, *chars, count)
    count = max(count, 1)
    per_part = {part: {"string_accuracy": totals[i] / count, "char_accuracy": totals[len(parts) + i] / count}
                for i, part in enumerate(parts)}
    result = {"string_accuracy": sum(p["string_accuracy"] for p in per_part.values()) / len(parts),
              "char_accuracy": sum(p["char_accuracy"] for p in per_part.values()) / len(parts),
              "count": int(count)}
    if len(parts) > 1:
        result.update(per_part)
    return result


def make_schedule(optimizer, lr: float, total_steps: int, warmup: float):
    """One-cycle: warm up over `warmup` of the steps, then anneal. torch's OneCycleLR divides by
    zero when a phase is a single step, so the warm-up gets at least two steps, and a run too
    short for two phases keeps a constant learning rate."""
    if total_steps < 4:
        for group in optimizer.param_groups:
            group["lr"] = lr
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    pct_start = min(max(warmup, 2.5 / total_steps), 1 - 2.5 / total_steps)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps,
                                               pct_start=pct_start, div_factor=20, final_div_factor=200)


def save_checkpoint(path: Path, state: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_form(form, args, spec, train_set, val_set, rt: Runtime, data_note: str, metrics: dict):
    out = args.out
    ckpt_path = out / "checkpoints" / f"{form}.pt"
    sampler = EpochSampler(len(train_set), args.seed, rt.rank, rt.world)
    steps_per_epoch = max(1, len(sampler) // args.batch_size)
    total_steps = args.steps or max(1, round((args.epochs or 10) * steps_per_epoch))
    eval_every = args.eval_every or min(steps_per_epoch, total_steps)
    ckpt = None
    if args.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt["spec"] != spec.to_json() or ckpt["arch"] != args.arch:
            raise CaptchaError(f"{ckpt_path}: was made for {ckpt['arch']} / {ckpt['spec']}, not this run's "
                               f"options; use another --out or drop --resume")
        planned = (ckpt.get("total_steps", total_steps), ckpt.get("batch_size", args.batch_size))
        if planned != (total_steps, args.batch_size):
            raise CaptchaError(f"{ckpt_path}: this run was started with {planned[0]} steps of batch {planned[1]}, "
                               f"not {total_steps} of {args.batch_size}; resume with the same schedule, or start a "
                               f"new run that continues from its weights: --init {out} --out NEW_DIR")
        if ckpt.get("done"):
            rt.print(f"{form}: already trained in {out} (step {ckpt['step']}); skipping")
            return ckpt["best"]

    torch.manual_seed(args.seed + rt.rank)
    model = build_model(form, spec, arch=args.arch, pretrained=args.init == "imagenet")
    if ckpt is None and args.init not in ("scratch", "imagenet"):
        init_from(model, args.init, form, spec, args.arch, rt)
    elif ckpt is None and form == "sequential" and args.form == "both" and (out / FILENAMES["one_go"]).exists():
        init_from(model, str(out / FILENAMES["one_go"]), form, spec, args.arch, rt)  # start from the one-go trunk
    model.to(rt.device).to(memory_format=torch.channels_last)
    raw = model
    if rt.distributed:
        model = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)

    decay = [p for p in raw.parameters() if p.ndim >= 2]
    no_decay = [p for p in raw.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    scheduler = make_schedule(optimizer, args.lr, total_steps, args.warmup)
    step, epoch, batch_in_epoch = 0, 0, 0
    best = {"string_accuracy": -1.0}
    history = []
    if ckpt is not None:
        raw.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, epoch, batch_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]
        best, history = ckpt["best"], ckpt["history"]
        rt.print(f"{form}: resumed from {ckpt_path} at step {step}/{total_steps}")

    val_sampler = EpochSampler(len(val_set), 0, rt.rank, rt.world, shuffle=False)
    val_loader = DataLoader(val_set, batch_size=args.batch_size * 2, sampler=val_sampler, num_workers=args.workers)

    def checkpoint(done=False):
        if rt.main:
            save_checkpoint(ckpt_path, {
                "model": raw.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "best": best, "history": history,
                "spec": spec.to_json(), "arch": args.arch, "done": done,
                "total_steps": total_steps, "batch_size": args.batch_size})

    rt.print(f"{form}: {args.arch}, {spec.describe()}, {total_steps} steps of {args.batch_size}"
             f"{f' x {rt.world} processes' if rt.world > 1 else ''}, {'bf16' if rt.bf16 else 'fp32'} on {rt.device}")
    bar = tqdm(total=total_steps, initial=step, desc=form, disable=not rt.main, dynamic_ncols=True)
    run_loss = run_chars = run_strings = None
    window_loss = window_chars = window_steps = 0.0  # means since the last validation, for metrics.json
    seen, train_time, last_ckpt = 0, 0.0, time.time()
    model.train()
    while step < total_steps:
        sampler.epoch, sampler.start = epoch, batch_in_epoch * args.batch_size
        set_epoch(train_set, epoch)
        loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                            drop_last=True, pin_memory=rt.device.type == "cuda")
        t0 = time.perf_counter()
        for x, y in loader:
            x = x.to(rt.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(rt.device, non_blocking=True)
            with rt.autocast():
                logits = model(x)
            loss = loss_fn(logits, y, args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(raw.parameters(), 2.0)
            optimizer.step()
            scheduler.step()
            step, batch_in_epoch, seen = step + 1, batch_in_epoch + 1, seen + len(y) * rt.world
            train_time += time.perf_counter() - t0

            with torch.no_grad():
                hit = hits(logits, y)
                ema = lambda old, new: new if old is None else 0.95 * old + 0.05 * new
                run_loss = ema(run_loss, loss.item())
                run_chars = ema(run_chars, hit.float().mean().item())
                run_strings = ema(run_strings, hit.all(2).float().mean().item())
                window_loss, window_chars = window_loss + loss.item(), window_chars + hit.float().mean().item()
                window_steps += 1
            bar.update(1)
            bar.set_postfix(loss=f"{run_loss:.3f}", char=f"{run_chars:.1%}", str=f"{run_strings:.1%}",
                            img_s=f"{seen / max(train_time, 1e-9):.1f}", refresh=False)

            if step % eval_every == 0 or step == total_steps:
                result = evaluate(model, val_loader, rt, parts_of(form))
                entry = {"step": step, "epoch": round(epoch + batch_in_epoch / steps_per_epoch, 3),
                         "train_loss": round(window_loss / window_steps, 5),
                         "train_char_accuracy": round(window_chars / window_steps, 5),
                         **rounded(result),
                         "images_per_s": round(seen / max(train_time, 1e-9), 2)}
                window_loss = window_chars = window_steps = 0.0
                history.append(entry)
                for part in parts_of(form):
                    shown = result.get(part, result)
                    rt.print(f"{part} step {step}: val full-string {shown['string_accuracy']:.2%}, "
                             f"per-char {shown['char_accuracy']:.2%} ({result['count']} images), "
                             f"train loss {entry['train_loss']:.4f}")
                if result["string_accuracy"] >= best["string_accuracy"] and rt.main:
                    best = {**entry, "samples_seen": step * args.batch_size * rt.world}
                    for part in parts_of(form):
                        shown = entry.get(part, entry)
                        save_weights(out / FILENAMES[part], raw.part(part) if form == "joint" else raw, part,
                                     args.arch, summary={
                            "data": data_note, "steps": step, "batch_size": args.batch_size * rt.world,
                            "val_string_accuracy": shown["string_accuracy"], "val_char_accuracy": shown["char_accuracy"],
                            "val_count": entry["count"], "init": args.init, "trained": form,
                            "precision": "bf16" if rt.bf16 else "fp32"})
                metrics["forms"][form] = {"best": best, "history": history, "total_steps": total_steps}
                if rt.main:
                    write_json(out / "metrics.json", metrics)
                checkpoint(done=step == total_steps)
                last_ckpt = time.time()
            elif time.time() - last_ckpt > args.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = time.time()
            if step >= total_steps:
                break
            t0 = time.perf_counter()
        else:
            epoch, batch_in_epoch = epoch + 1, 0
    bar.close()
    rt.barrier()
    return best


def rounded(result: dict) -> dict:
    return {k: rounded(v) if isinstance(v, dict) else round(v, 5) if isinstance(v, float) else v
            for k, v in result.items()}


def write_json(path: Path, data: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    rt = Runtime(args)
    random.seed(args.seed)
    spec = CaptchaSpec(args.alphabet, args.length, args.height, args.width, crop=args.crop)
    train_set, val_set, data_note = make_datasets(args, spec, rt)
    rt.print(f"data: {data_note}")
    forms = {"both": ["one_go", "sequential"], "joint": ["joint"]}.get(args.form) or [form_name(args.form)]
    metrics_path = args.out / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if args.resume and metrics_path.exists() else {}
    metrics.update({"spec": json.loads(spec.to_json()), "arch": args.arch, "data": data_note,
                    "world_size": rt.world, "device": str(rt.device),
                    "args": json.loads(json.dumps(vars(args), default=str))})  # what the model card quotes
    metrics.setdefault("forms", {})
    for form in forms:
        best = train_form(form, args, spec, train_set, val_set, rt, data_note, metrics)
        rt.print(f"{form}: best val full-string {best['string_accuracy']:.2%} at step {best.get('step')} "
                 f"-> {', '.join(str(args.out / FILENAMES[part]) for part in parts_of(form))}")
    if rt.distributed:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CaptchaError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command with --resume to continue from the last checkpoint",
              file=sys.stderr)
        sys.exit(130)
