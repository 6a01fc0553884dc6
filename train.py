"""Train the one-go and/or sequential CAPTCHA readers.

    python train.py --data DIR --out OUT --minutes 20              # your CAPTCHAs: every setting from the data
    python train.py --data DIR --form joint --minutes 20           # both forms on one trunk, in 20 minutes
    python train.py --synthetic 50000 --form one-go --steps 2000   # no data: generated CAPTCHAs
    python train.py --stream "CMD" --stream "CMD" --val-stream "CMD" --minutes 8   # images drawn while it trains
    torchrun --nproc_per_node 4 train.py --data DIR ...            # several processes / GPUs (DDP)

Forms: one-go; sequential; both (sequential, then one-go starting from the trunk it adapted); joint (one trunk
with both heads, trained together: one pass per image instead of two); auto, the default: both for a
fixed length, joint for a length range. Writes OUT/one_go.safetensors
and/or OUT/sequential.safetensors (the best by validation full-string accuracy), OUT/metrics.json,
and checkpoints in OUT/checkpoints/ (--resume continues from them). At the end, each saved form's
confidence is calibrated on the validation images and the fit stored with its weights.

The story, top to bottom: arguments; runtime (device, precision, processes); data; then for each
stage the model (init or resume), one loop, validation and saving; then calibration.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, Sampler, TensorDataset
from tqdm import tqdm

from captcha import calibration, settings, training
from captcha.data import FolderDataset, SyntheticDataset, check_labels, listing, read_samples, split_samples
from captcha.errors import CaptchaError, DatasetError, SpecError, WeightsError
from captcha.models import build_model, feature_shape, form_name
from captcha.recognizer import Recognizer, bf16_is_fast
from captcha.spec import DEFAULT_ALPHABET, DEFAULT_HEIGHT, DEFAULT_LENGTH, CaptchaSpec, parse_length
from captcha.streams import StreamBuffer, read_all
from captcha.weights import FILENAMES, SHIPPED, find_weights, load_weights, save_weights, write_calibration

clock = time.monotonic  # the time budget's clock (tests replace it)
REAL_AUGMENT = 2.0  # --augment for --data: a few hundred real images need more variety than a generator's stream


# ----------------------------------------------------------------------------- arguments
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", type=Path, nargs="+", help="folder(s) of CAPTCHA images: named by their answers "
                   "(abc12.png, abc12_2.png, abc12.1.png, abc12_<hash>.jpg) or listed in labels.csv/.tsv/.txt")
    g.add_argument("--labels", type=Path, help="a labels file (file,label lines) kept elsewhere than in --data")
    g.add_argument("--label-pattern", metavar="REGEX", help="the label is this regex's group 'label' (or first "
                   "group) of each file name without its extension, for names the default rule does not fit")
    g.add_argument("--case-insensitive", action="store_true", help="fold labels to lower case: one class per letter")
    g.add_argument("--val", type=Path, help="separate validation folder (default: a split of --data)")
    g.add_argument("--val-fraction", type=float, default=0.1, help="share of --data labels held out (default 0.1)")
    g.add_argument("--split-seed", type=int, default=0,
                   help="which labels --val-fraction holds out; independent of --seed so that rounds that "
                        "continue one another (--init) never validate on what an earlier round trained on")
    g.add_argument("--skip-invalid", action="store_true", help="skip files whose names are not valid labels")
    g.add_argument("--synthetic", type=int, default=0, metavar="N", help="train on N generated CAPTCHAs (added to --data if both)")
    g.add_argument("--synthetic-val", type=int, default=1000, metavar="N", help="generated validation CAPTCHAs when there is no --data")
    g.add_argument("--fonts", nargs="+", help="TTF files or folders for generated CAPTCHAs (default: DejaVu)")
    g.add_argument("--stream", action="append", metavar="CMD",
                   help="a command whose output is images drawn while training runs (captcha/streams.py says the "
                        "format); repeat for more workers. Batches are sampled from everything received so far")
    g.add_argument("--val-stream", action="append", metavar="CMD", help="a command that draws the validation images, then ends")
    g.add_argument("--stream-buffer", type=int, metavar="N",
                   help="images kept from --stream (default: all GPU memory but 30 GiB, or 20000 on a CPU)")
    g.add_argument("--augment", type=float, metavar="S", help="augmentation strength: 1 is the small random affine "
                   "made for generated images, more also varies tone (default: 1 for generated or streamed images, "
                   f"{REAL_AUGMENT:g} for --data), 0 is none")
    g.add_argument("--no-augment", dest="augment", action="store_const", const=0.0, help="--augment 0")
    g.add_argument("--workers", type=int, default=2, help="data-loading processes per training process")
    g = p.add_argument_group("CAPTCHA")
    g.add_argument("--alphabet", help="characters a CAPTCHA may contain, or auto: those in the labels "
                   f"(the default with --data; else {DEFAULT_ALPHABET})")
    g.add_argument("--length", help="characters per CAPTCHA: N, a range MIN-MAX (e.g. 4-8), or auto: the range "
                   f"in the labels (the default with --data; else {DEFAULT_LENGTH})")
    g.add_argument("--size", help="model input: N (square), HxW (e.g. 64x192), or auto: from the images' typical "
                   f"height and aspect ratio (the default with --data; else {DEFAULT_HEIGHT})")
    g.add_argument("--crop", default="0,0,1,1", help="part of each image the model reads, as fractions "
                   "left,top,right,bottom (e.g. 0,0.25,1,0.75 for text centred vertically)")
    g = p.add_argument_group("model and schedule")
    g.add_argument("--form", default="auto", choices=["auto", "one-go", "sequential", "both", "joint"],
                   help="both: two models, the sequential one first (from --init), then one-go from the trunk it "
                        "adapted; joint: one trunk with both heads, trained together (one pass per image instead of "
                        "two; the two files share their trunk); auto: both for a fixed length, joint for a range (its "
                        "heads need more steps than half a budget buys)")
    g.add_argument("--arch", default="resnet50", help="any timm CNN (default resnet50)")
    g.add_argument("--attention", choices=["strips", "chain", "lengths"], help="how the sequential form's positions "
                   "find their characters: equal strips (fixed lengths' default); for a length range, one set of "
                   "strips per length weighed by a length classifier (lengths, the default), or each position one "
                   "learned step right of the previous (chain); see benchmarks/own_captchas.md")
    g.add_argument("--one-go-head", choices=["flat", "lengths"], help="the one-go head for a length range: logits "
                   "under each possible length weighed by a length classifier (lengths, the default), or one flat set")
    g.add_argument("--init", default="auto", help="auto (the shipped weights' trunk for a resnet50, else scratch), "
                   "scratch, imagenet (timm download), or a weights folder/file to fine-tune")
    g.add_argument("--epochs", type=float, help="passes over the training data (default 10)")
    g.add_argument("--steps", type=int, help="optimizer steps per stage (instead of --epochs)")
    g.add_argument("--minutes", type=float, help="fit the schedule to this much wall time, validation and saving "
                   "included (instead of --epochs/--steps); --form both gives each form half")
    g.add_argument("--batch-size", type=int, default=32, help="per process")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the one-cycle schedule")
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--label-smoothing", type=float, default=0.05)
    g.add_argument("--warmup", type=float, default=0.1, help="share of steps spent warming up")
    g = p.add_argument_group("run")
    g.add_argument("--out", type=Path, default=Path("runs/captcha"), help="where weights, metrics and checkpoints go")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/ if present")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--eval-every", type=int, help="validate every N steps (default: every epoch; a tenth of a --stream run)")
    g.add_argument("--checkpoint-minutes", type=float, default=10.0, help="also checkpoint this often")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    g.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), fp32 elsewhere")
    g.add_argument("--threads", type=int, help="torch CPU threads per process")
    g.add_argument("--no-int8", dest="int8", action="store_false",
                   help="do not make the int8 trunk at the end (python -m captcha quantize makes it later)")
    args = p.parse_args(argv)
    if sum(v is not None for v in (args.epochs, args.steps, args.minutes)) > 1:
        p.error("give one of --epochs, --steps or --minutes")
    if args.minutes is not None and args.minutes <= 0:
        p.error("--minutes must be more than 0 (the wall time the run may take, e.g. --minutes 20)")
    if not (args.data or args.synthetic or args.stream):
        p.error("give --data DIR (images named by their answers), --synthetic N (generated CAPTCHAs) "
                "or --stream CMD (images drawn while training)")
    if args.stream and (args.data or args.synthetic):
        p.error("--stream trains on its own images: give it without --data and --synthetic")
    if args.stream and not (args.val_stream or args.val):
        p.error("--stream needs validation images from the same source: --val-stream CMD or --val DIR")
    auto = "auto" if args.data else None
    if args.augment is None:
        args.augment = REAL_AUGMENT if args.data and not args.synthetic else 1.0
    args.alphabet = args.alphabet or auto or DEFAULT_ALPHABET
    args.length = args.length or auto or str(DEFAULT_LENGTH)
    args.size = args.size or auto or str(DEFAULT_HEIGHT)
    if "auto" in (args.alphabet, args.length, args.size) and not args.data:
        p.error("--alphabet/--length/--size auto read the labels and images of --data; give them by hand "
                "for --synthetic or --stream")
    try:
        if args.length != "auto":
            parse_length(args.length)
        size = [int(v) for v in args.size.lower().split("x")] if args.size != "auto" else [0]
        args.crop = tuple(float(v) for v in args.crop.split(","))
    except SpecError:
        p.error(f"--length is N, MIN-MAX (e.g. 4-8) or auto, not {args.length!r}")
    except ValueError:
        p.error("--size is N, HxW (e.g. 128 or 96x192) or auto; --crop is four fractions, e.g. 0,0.25,1,0.75")
    args.height, args.width = size[0], size[-1]
    if args.case_insensitive and args.alphabet != "auto":
        args.alphabet = "".join(dict.fromkeys(args.alphabet.lower()))
    return args


# ----------------------------------------------------------------------------- runtime
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
            if self.device.index is None:  # set_device wants an index: plain "cuda" is the current one
                self.device = torch.device("cuda", torch.cuda.current_device())
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

    def same_everywhere(self, value: int) -> int:
        """Rank 0's value on every rank (a plan made from one rank's timings)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.broadcast(t, 0)
        return int(t.item())

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def print(self, *a, **k):
        if self.main:
            tqdm.write(" ".join(str(x) for x in a), **k)


# ----------------------------------------------------------------------------- data
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


class DatasetBatches:
    """Batches of a dataset, epoch after epoch; `position` (epoch, batch in epoch) is what resume needs."""

    def __init__(self, dataset, args, rt: Runtime):
        self.dataset, self.args, self.rt = dataset, args, rt
        self.sampler = EpochSampler(len(dataset), args.seed, rt.rank, rt.world)
        self.steps_per_epoch = max(1, len(self.sampler) // args.batch_size)

    def __call__(self, epoch: int, batch_in_epoch: int):
        while True:
            self.sampler.epoch, self.sampler.start = epoch, batch_in_epoch * self.args.batch_size
            loader = DataLoader(self.dataset, batch_size=self.args.batch_size, sampler=self.sampler,
                                num_workers=self.args.workers, drop_last=True,
                                pin_memory=self.rt.device.type == "cuda")
            for pixels, targets in loader:
                batch_in_epoch += 1
                yield pixels, targets, (epoch, batch_in_epoch)
            epoch, batch_in_epoch = epoch + 1, 0


class StreamBatches:
    """Batches sampled from a StreamBuffer; no epochs (the images keep coming)."""

    steps_per_epoch = None

    def __init__(self, buffer: StreamBuffer, args, rt: Runtime):
        self.buffer, self.args = buffer, args
        self.generator = torch.Generator(rt.device)

    def __call__(self, epoch: int, batch_in_epoch: int):
        while True:
            self.generator.manual_seed(self.args.seed * 1_000_003 + batch_in_epoch)
            batch_in_epoch += 1
            yield *self.buffer.sample(self.args.batch_size, self.generator), (0, batch_in_epoch)


def read_folders(args, rt: Runtime):
    """{folder: samples} of --data and --val, as their label sources give them (not yet checked
    against a spec: --alphabet/--length auto are read from them)."""
    folders = {}
    for folder in [*(args.data or []), *([args.val] if args.val else [])]:
        samples, problems, source = read_samples(folder, args.labels if folder != args.val else None,
                                                 args.label_pattern, fold_case=args.case_insensitive)
        if problems and not args.skip_invalid:
            raise DatasetError(f"{folder}: {len(problems)} problem(s) with the images and their labels ({source}):\n"
                               f"{listing(problems)}\nFix them, give --labels FILE or --label-pattern REGEX, or pass "
                               f"--skip-invalid to leave these out (nothing was changed).")
        if problems:
            rt.print(f"warning: left out {len(problems)} image(s) or label(s) of {folder} (first: {problems[0]})")
        if not samples:
            raise DatasetError(f"{folder}: no labelled images (images named by their answers, e.g. abc12.png, "
                               f"or a labels.csv of file,label lines)")
        rt.print(f"{folder}: {len(samples)} images, {source}")
        folders[folder] = samples
    return folders


def checked(folders: dict, spec: CaptchaSpec, args, rt: Runtime) -> dict:
    """The folders' samples whose labels fit `spec`; the others refused together (or left out)."""
    out, problems = {}, []
    for folder, samples in folders.items():
        out[folder], bad = check_labels(samples, spec)
        problems += [f"{folder}/{line}" for line in bad]
    if problems and not args.skip_invalid:
        raise DatasetError(f"{len(problems)} label(s) do not fit {spec.lengths} characters of {spec.alphabet!r}:\n"
                           f"{listing(problems)}\nFix them, change --alphabet/--length (or leave them auto), "
                           f"or pass --skip-invalid to leave them out (nothing was changed).")
    if problems:
        rt.print(f"warning: left out {len(problems)} image(s) whose labels do not fit (first: {problems[0]})")
    return out


def make_data(args, spec: CaptchaSpec, rt: Runtime, folders: dict | None = None):
    """(batches, validation dataset, a line describing the data)."""
    notes, val = [], None
    folders = checked(folders or {}, spec, args, rt)
    if args.val:
        val = FolderDataset(folders[args.val], spec)
    elif args.val_stream:
        val = TensorDataset(*read_all(args.val_stream, spec))
    if args.stream:
        capacity = args.stream_buffer or stream_capacity(spec, rt.device)
        buffer = StreamBuffer(args.stream, spec, capacity, rt.device).start()
        buffer.wait(4 * args.batch_size)
        rt.print(f"stream: {len(args.stream)} worker(s), buffer of {buffer.capacity} images on {rt.device}")
        notes.append(f"images drawn during training by {len(args.stream)} stream worker(s)")
        batches = StreamBatches(buffer, args, rt)
    else:
        parts = []
        if args.data:
            samples = [s for folder in args.data for s in folders[folder]]
            if val is None:
                samples, val_samples = split_samples(samples, args.val_fraction, seed=args.split_seed)
                val = FolderDataset(val_samples, spec) if val_samples else None
            if not samples:
                raise DatasetError(f"{' '.join(map(str, args.data))}: nothing left to train on after the "
                                   f"validation split; add images or use --val")
            parts.append(FolderDataset(samples, spec))
            notes.append(f"{len(samples)} images from {', '.join(str(d) for d in args.data)}")
        if args.synthetic:
            parts.append(SyntheticDataset(args.synthetic, spec, seed=args.seed, fonts=args.fonts))
            notes.append(f"{args.synthetic} generated (seed {args.seed})")
        batches = DatasetBatches(parts[0] if len(parts) == 1 else ConcatDataset(parts), args, rt)
    if val is None:  # generated validation images from a seed no training image uses
        val = SyntheticDataset(args.synthetic_val, spec, seed=args.seed + 7_919_000, fonts=args.fonts)
        notes.append(f"validation: {args.synthetic_val} generated (seed {args.seed + 7_919_000})")
    else:
        notes.append(f"validation: {len(val)} images")
    return batches, val, "; ".join(notes)


def stream_capacity(spec: CaptchaSpec, device: torch.device, reserve_gib: float = 30) -> int:
    """Images a stream buffer may hold: all free GPU memory but what training needs, or 20000 on a CPU."""
    if device.type != "cuda":
        return 20_000
    free = torch.cuda.mem_get_info(device)[0] - reserve_gib * 2**30
    return int(max(free, 2**30) // (3 * spec.height * spec.width + 8 * spec.length))


# ----------------------------------------------------------------------------- model: init or resume
def init_from(model, source: str, form: str, spec: CaptchaSpec, arch: str, rt: Runtime):
    """Fine-tune start: the whole model if it matches, else just its trunk (new alphabet or length).
    A joint model takes each head from its own file; their shared trunk ends up the sequential file's."""
    path = Path(source)
    files = find_weights(path) if path.is_dir() else ({"file": path} if path.is_file() else {})
    if not files:
        raise WeightsError(f"--init {source}: neither a weights folder nor a .safetensors file")
    for part, module in parts_of(model, form).items():
        file = files.get(part) or next(iter(files.values()))
        donor, info = load_weights(file)
        if info.arch != arch:
            raise WeightsError(f"--init {file}: holds a {info.arch} model, but --arch is {arch}")
        state = donor.state_dict()
        same_head = info.form == part and info.config == getattr(module, "config", info.config)
        if same_head and info.spec == spec:
            module.load_state_dict(state)
            rt.print(f"init {part}: all weights from {file}")
        elif same_head and (info.spec.alphabet, info.spec.lengths) == (spec.alphabet, spec.lengths):
            module.load_resized(state, feature_shape(donor.trunk, info.spec)[1:])  # new input size or crop
            rt.print(f"init {part}: all weights from {file}, made for {info.spec.describe()}; head fitted to this input")
        else:
            module.trunk.load_state_dict({k[len("trunk."):]: v for k, v in state.items() if k.startswith("trunk.")})
            rt.print(f"init {part}: trunk from {file} ({info.form}, {info.spec.describe()}); new head")


def parts_of(model, form: str) -> dict:
    """form -> the module saved under its name: a joint model holds both forms."""
    return {"one_go": model.one_go, "sequential": model.sequential} if form == "joint" else {form: model}


def load_checkpoint(path: Path, args, spec: CaptchaSpec, total_steps: int | None):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt["spec"] != spec.to_json() or ckpt["arch"] != args.arch:
        raise CaptchaError(f"{path}: was made for {ckpt['arch']} / {ckpt['spec']}, not this run's "
                           f"options; use another --out or drop --resume")
    planned = (ckpt["total_steps"], ckpt["batch_size"])
    if (total_steps is not None and planned[0] != total_steps) or planned[1] != args.batch_size:
        raise CaptchaError(f"{path}: this run was started with {planned[0]} steps of batch {planned[1]}, "
                           f"not {total_steps} of {args.batch_size}; resume with the same schedule, or start a "
                           f"new run that continues from its weights: --init {args.out} --out NEW_DIR")
    return ckpt


# ----------------------------------------------------------------------------- validation
@torch.no_grad()
def evaluate(model, loader, rt: Runtime, parts: list[str]) -> dict:
    """Full-string and per-character accuracy on the validation set (summed over ranks).

    With two parts (joint), each form's accuracies are under its name and the top-level figures
    are their mean, which picks the best checkpoint.
    """
    model.eval()
    strings, chars, count = [0.0] * len(parts), [0.0] * len(parts), 0
    for pixels, targets in loader:
        targets = targets.to(rt.device)
        with rt.autocast():
            hit = training.hits(model(training.to_input(pixels, rt.device)), targets)
        for i in range(len(parts)):
            strings[i] += hit[:, i].all(1).sum().item()
            chars[i] += hit[:, i].float().mean(1).sum().item()
        count += len(targets)
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


# ----------------------------------------------------------------------------- one stage: model, loop, saving
def train_stage(form, args, spec, batches, val_set, rt: Runtime, data_note: str, metrics: dict, minutes=None):
    out, ckpt_path = args.out, args.out / "checkpoints" / f"{form}.pt"
    per_epoch = batches.steps_per_epoch
    total_steps = None if minutes else args.steps or max(1, round((args.epochs or 10) * (per_epoch or 1000)))
    ckpt = load_checkpoint(ckpt_path, args, spec, total_steps) if args.resume and ckpt_path.exists() else None
    if ckpt is not None and ckpt.get("done"):
        rt.print(f"{form}: already trained in {out} (step {ckpt['step']}); skipping")
        return ckpt["best"]

    # the model: fresh, from --init, from the sequential form's trunk (--form both), or from the checkpoint
    torch.manual_seed(args.seed + rt.rank)
    heads = {}
    if args.attention and form in ("sequential", "joint"):
        heads["attention"] = args.attention
    if args.one_go_head == "lengths" and form in ("one_go", "joint"):
        heads["head"] = args.one_go_head
    model = build_model(form, spec, arch=args.arch, pretrained=args.init == "imagenet", **heads)
    adapted = out / FILENAMES["sequential"]  # --form both trains it first: its trunk has learnt this style
    if ckpt is None and form == "one_go" and args.form == "both" and adapted.exists():
        init_from(model, str(adapted), form, spec, args.arch, rt)
    elif ckpt is None and args.init not in ("scratch", "imagenet"):
        init_from(model, args.init, form, spec, args.arch, rt)
    model.to(rt.device).to(memory_format=torch.channels_last)
    raw = model
    if rt.distributed:
        model = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    optimizer = training.make_optimizer(raw, args.lr, args.weight_decay)
    step, position, best, history = 0, (0, 0), {"string_accuracy": -1.0}, []
    if ckpt is not None:
        raw.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, position, best, history = ckpt["step"], tuple(ckpt["position"]), ckpt["best"], ckpt["history"]
        total_steps = ckpt["total_steps"]
        rt.print(f"{form}: resumed from {ckpt_path} at step {step}/{total_steps}")

    # the time budget: a few steps at the starting rate, one validation, then the schedule that fits
    budget = training.TimeBudget(minutes, clock) if minutes and total_steps is None else None
    probe = 8
    # with a budget, validations are spaced by time (a tenth of it) once the step time is known
    eval_every = args.eval_every or (None if budget else per_epoch) or (None if total_steps is None else max(1, total_steps // 10))
    val_loader = DataLoader(val_set, batch_size=args.batch_size * 2, num_workers=args.workers,
                            sampler=EpochSampler(len(val_set), 0, rt.rank, rt.world, shuffle=False))
    parts = list(parts_of(raw, form))

    def save_checkpoint(done=False):
        nonlocal last_ckpt
        last_ckpt = clock()
        if rt.main:
            write_atomic(ckpt_path, lambda tmp: torch.save({
                "model": raw.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "position": position,
                "best": best, "history": history, "spec": spec.to_json(), "arch": args.arch, "done": done,
                "total_steps": total_steps, "batch_size": args.batch_size}, tmp))

    def validate():
        nonlocal best, window
        result = evaluate(model, val_loader, rt, parts)
        entry = {"step": step, "epoch": round(position[0] + position[1] / per_epoch, 3) if per_epoch else None,
                 "train_loss": round(float(window[0]) / max(window[2], 1), 5),
                 "train_char_accuracy": round(float(window[1]) / max(window[2], 1), 5),
                 **rounded(result), "images_per_s": round(seen / max(train_seconds, 1e-9), 2)}
        window = [0.0, 0.0, 0]
        history.append(entry)
        for part in parts:
            shown = result.get(part, result)
            rt.print(f"{part} step {step}: val full-string {shown['string_accuracy']:.2%}, "
                     f"per-char {shown['char_accuracy']:.2%} ({result['count']} images), train loss {entry['train_loss']:.4f}")
        if result["string_accuracy"] >= best["string_accuracy"] and rt.main:
            best = {**entry, "samples_seen": step * args.batch_size * rt.world}
            for part, module in parts_of(raw, form).items():
                shown = entry.get(part, entry)
                save_weights(out / FILENAMES[part], module, part, args.arch, summary={
                    "data": data_note, "steps": step, "batch_size": args.batch_size * rt.world,
                    "val_string_accuracy": shown["string_accuracy"], "val_char_accuracy": shown["char_accuracy"],
                    "val_count": entry["count"], "init": args.init, "trained": form,
                    "case_insensitive": args.case_insensitive,
                    "precision": "bf16" if rt.bf16 else "fp32"})
        metrics["forms"][form] = {"best": best, "history": history, "total_steps": total_steps}
        if rt.main:
            write_atomic(out / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=2, ensure_ascii=False)))
        # a budgeted run checkpoints by time, not at every validation (a ResNet-50 with its optimiser
        # state is ~300 MB: seconds a save on a CPU)
        if budget is None or step == total_steps or clock() - last_ckpt > args.checkpoint_minutes * 60:
            save_checkpoint(done=step == total_steps)

    rt.print(f"{form}: {args.arch}, {spec.describe()}, "
             f"{f'{total_steps} steps' if total_steps else f'steps to fit {minutes:g} minutes'} of {args.batch_size}"
             f"{f' x {rt.world} processes' if rt.world > 1 else ''}, {'bf16' if rt.bf16 else 'fp32'} on {rt.device}")
    bar = tqdm(total=total_steps, initial=step, desc=form, disable=not rt.main, dynamic_ncols=True)
    window = [0.0, 0.0, 0]  # loss, per-character accuracy, steps since the last validation
    seen, train_seconds, last_ckpt, probe_start = 0, 0.0, clock(), None
    planned_at, validating = None, 0.0  # when the schedule was fitted; validation seconds since then
    generator = torch.Generator(rt.device)
    if budget:
        budget.begin()
    model.train()
    for pixels, targets, position in batches(*position):
        t0 = clock()
        generator.manual_seed(args.seed * 1_000_003 + step)
        x = training.to_input(pixels, rt.device, augment=args.augment, generator=generator)
        y = targets.to(rt.device, non_blocking=True)
        training.set_lr(optimizer, args.lr * training.one_cycle(step, total_steps or 10**9, args.warmup))
        loss, logits = training.train_step(model, optimizer, x, y, args.label_smoothing, rt.autocast())
        with torch.no_grad():  # summed on the device: reading them every step would stall a GPU
            window = [window[0] + loss.detach(), window[1] + training.hits(logits, y).float().mean(), window[2] + 1]
        step, seen = step + 1, seen + len(y) * rt.world
        train_seconds += clock() - t0
        bar.update(1)
        if step % 10 == 0 or step < 10:
            bar.set_postfix(loss=f"{float(window[0]) / window[2]:.3f}", char=f"{float(window[1]) / window[2]:.1%}",
                            img_s=f"{seen / max(train_seconds, 1e-9):.1f}",
                            **({"left": training.format_seconds(budget.left())} if budget else {}), refresh=False)

        if budget and total_steps is None:  # still measuring
            if step in (2, probe) and rt.device.type == "cuda":
                torch.cuda.synchronize()  # time the steps themselves, not how fast they were queued
            if step == 2:
                probe_start = clock()  # the first steps also allocate and pick kernels: not counted
            if step == probe:
                step_seconds = (clock() - probe_start) / (probe - 2)
                t_eval = clock()
                validate()
                eval_seconds = clock() - t_eval
                every = eval_every or max(1, round(0.1 * budget.seconds / max(step_seconds, 1e-9)))
                total_steps = rt.same_everywhere(budget.plan(step, step_seconds, eval_seconds, every))
                eval_every = every
                bar.total = total_steps
                rt.print(f"{form}: {step_seconds:.3f} s a step, {eval_seconds:.1f} s a validation: "
                         f"{total_steps} steps fit {minutes:g} minutes")
                planned_at = clock()
            continue
        if step % eval_every == 0 or step >= total_steps:
            t_eval = clock()
            validate()
            eval_seconds = clock() - t_eval
            validating += eval_seconds
            if budget and step < total_steps:
                # six timed steps can misjudge a long run (data loading catching up, a busy machine):
                # when the pace since then is 5% off, the steps left are re-fitted to the time left
                pace = (clock() - planned_at - validating) / max(1, step - probe)
                off = abs(pace / step_seconds - 1) > 0.05
                fitted = rt.same_everywhere(budget.plan(step, pace, eval_seconds, eval_every) if off else total_steps)
                if fitted != total_steps:
                    step_seconds, total_steps, bar.total = pace, fitted, fitted
                    rt.print(f"{form}: {pace:.3f} s a step since then: {total_steps} steps fit")
        elif clock() - last_ckpt > args.checkpoint_minutes * 60:
            save_checkpoint()
        if step >= total_steps:
            break
    bar.close()
    if budget:
        rt.print(f"{form}: {training.format_seconds(budget.elapsed())} of {training.format_seconds(budget.seconds)} used")
    rt.barrier()
    return best


def calibrate_saved(args, spec: CaptchaSpec, val_set, rt: Runtime, forms: list[str]) -> None:
    """Fit the saved forms' confidence calibration on the validation images and store it in their
    metadata (captcha/calibration.py): each confidence then says how often such readings are right."""
    rec = Recognizer.from_pretrained(args.out, forms=forms, spec=spec, precision="fp32", engine="torch")
    loader = DataLoader(val_set, batch_size=64, num_workers=0)
    pixels, labels = [], []
    for x, y in loader:
        pixels.append(x)
        labels += [spec.decode(row.tolist()) for row in y]
    logits = rec.logits(batches=pixels)
    result = calibration.fit(logits, {form: spec for form in logits}, labels,
                             source=f"{len(labels)} validation images")
    for form, fitted in result.items():
        write_calibration(rec.infos[form].path, fitted)
        rt.print(f"{form}: calibrated on {fitted['count']} validation images ({fitted['errors']} misread): "
                 f"temperature {fitted['temperature']:.3f}, full-string ECE {fitted['ece_before']:.1%} -> "
                 f"{fitted['ece_after']:.1%}; sure at confidence >= {fitted['threshold']:.3f} "
                 f"(answer: {fitted['answer_threshold']:.3f})")


def quantize_saved(args, spec: CaptchaSpec, folders: dict, rt: Runtime, forms: list[str],
                   calibrate: int = 300, check: int = 1000) -> None:
    """Make the saved weights' int8 trunk from --data images (captcha/int8.py): ranges measured on
    `calibrate` of them, checked on up to `check` others; it is used only if the check passes."""
    from captcha import int8, onnx_trunk
    samples = [s for group in checked({f: folders[f] for f in args.data or []}, spec, args, rt).values() for s in group]
    need = calibrate + int8.MIN_CHECK_IMAGES
    if not args.int8 or not onnx_trunk.available() or len(samples) < need:
        why = ("--no-int8" if not args.int8 else "onnxruntime is not installed" if not onnx_trunk.available()
               else f"{len(samples)} labelled images in --data; it needs {need}")
        rt.print(f"int8 trunk: not made ({why}); python -m captcha quantize --weights {args.out} --data DIR makes it")
        return
    rec = Recognizer.from_pretrained(args.out, forms=forms, spec=spec, precision="fp32", engine="onnx")
    c = int8.quantize(rec, *int8.split(samples, calibrate, check))["check"]
    verdict = "used where faster" if c["passed"] else f"not used: {c['why']}"
    rt.print(f"int8 trunk: readings agree with fp32 on {c['agreement']:.2%} of {c['images']} images "
             f"({c['reread_share']:.1%} re-read in fp32); {verdict}")


def rounded(result: dict) -> dict:
    return {k: rounded(v) if isinstance(v, dict) else round(v, 5) if isinstance(v, float) else v
            for k, v in result.items()}


def write_atomic(path: Path, write):
    """write(tmp) then rename over `path`: a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    rt = Runtime(args)
    folders = read_folders(args, rt)
    spec, args.init = settings.choose(args, folders, rt.print)
    if not spec.variable and "lengths" in (args.attention, args.one_go_head):
        rt.print(f"error: --attention lengths and --one-go-head lengths read a length range (--length MIN-MAX); "
                 f"these CAPTCHAs all have {spec.length} characters: leave them out", file=sys.stderr)
        return 2
    if spec.variable:  # a range's heads read by length unless told otherwise
        args.attention, args.one_go_head = args.attention or "lengths", args.one_go_head or "lengths"
    if args.form == "auto":
        args.form = "joint" if spec.variable else "both"
        rt.print(f"form auto: {args.form} " + ("(a length range: both heads learn from every step of one trunk)"
                                               if spec.variable else "(sequential, then one-go from the trunk it adapted)"))
    batches, val_set, data_note = make_data(args, spec, rt, folders)
    rt.print(f"data: {data_note}")
    stages = {"both": ["sequential", "one_go"], "joint": ["joint"]}.get(args.form) or [form_name(args.form)]
    metrics_path = args.out / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if args.resume and metrics_path.exists() else {}
    metrics.update({"spec": json.loads(spec.to_json()), "arch": args.arch, "data": data_note,
                    "world_size": rt.world, "device": str(rt.device),
                    "args": json.loads(json.dumps(vars(args), default=str))})  # what the model card quotes
    metrics.setdefault("forms", {})
    try:
        for form in stages:
            minutes = args.minutes / len(stages) if args.minutes else None
            best = train_stage(form, args, spec, batches, val_set, rt, data_note, metrics, minutes)
            saved = ["one_go", "sequential"] if form == "joint" else [form]
            rt.print(f"{form}: best val full-string {best['string_accuracy']:.2%} at step {best.get('step')} "
                     f"-> {', '.join(str(args.out / FILENAMES[part]) for part in saved)}")
        if rt.main:
            saved = ["one_go", "sequential"] if args.form in ("both", "joint") else [form_name(args.form)]
            calibrate_saved(args, spec, val_set, rt, saved)
            quantize_saved(args, spec, folders, rt, saved)
    finally:
        if isinstance(batches, StreamBatches):
            batches.buffer.close()
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
