"""How fast a Recognizer reads on this machine: single-image latency and batch throughput, for
each engine side by side in one run, against a plain PyTorch forward of the same trunk."""
from __future__ import annotations

import copy
import io
import os
import platform
import time
import warnings

import numpy as np
import torch

from .recognizer import Recognizer


def _percentiles(times_ms: list[float]) -> dict:
    a = np.asarray(times_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "mean_ms": round(float(a.mean()), 2)}


def encode(image) -> bytes:
    """An image as the PNG bytes a client would send: what the single-image timings start from."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bench(recognizer: Recognizer, images: list, runs: int = 50, warmup: int = 5, batch_size: int = 32,
          batches: int = 3) -> dict:
    """Latency of `predict` (decode + every form) over `images` in turn, and images/s of
    `predict_batch` over `batches` batches of them. Distinct images matter: the int8 engine
    re-reads doubtful ones in fp32, and the same image over and over would hide that cost."""
    for i in range(warmup):
        recognizer.predict(images[i % len(images)])
    single = []
    for i in range(runs):
        t0 = time.perf_counter()
        recognizer.predict(images[i % len(images)])
        single.append((time.perf_counter() - t0) * 1000)
    batch = [images[i % len(images)] for i in range(batch_size * batches)]
    recognizer.predict_batch(batch[:batch_size], batch_size)
    t0 = time.perf_counter()
    recognizer.predict_batch(batch, batch_size)
    throughput = len(batch) / (time.perf_counter() - t0)
    return {
        "forms": list(recognizer.models),
        "archs": {f: i.arch for f, i in recognizer.infos.items()},
        "input_hxw": {f: f"{i.spec.height}x{i.spec.width}" for f, i in recognizer.infos.items()},
        "precision": recognizer.precision,
        "engine": recognizer.engine,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # AVX2, AVX512, ...: what the kernels can use
        "distinct_images": len(images),
        "single_image": {"runs": runs, **_percentiles(single)},
        "batch": {"batch_size": batch_size, "images": len(batch), "images_per_s": round(throughput, 1)},
    }


@torch.inference_mode()
def stages(recognizer: Recognizer, images: list, batch_size: int = 32) -> dict:
    """Where a batch's time goes, in ms per image: decoding the bytes, geometry and normalisation,
    the model (trunk and heads: with the ONNX engines one graph), turning logits into readings,
    fp32 re-reads of doubtful readings."""
    from .images import open_image
    batch = [images[i % len(images)] for i in range(batch_size)]
    recognizer.predict_batch(batch, batch_size)  # warm
    t = {}
    t0 = time.perf_counter()
    decoded = [open_image(im) for im in batch]
    t["decode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    inputs = recognizer._inputs(decoded)
    t["preprocess"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    logits = recognizer._logits(inputs)
    t["model"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    readings = recognizer._calibrated_readings(logits)
    t["readings"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if doubtful := recognizer._doubtful(readings):
        again = {spec: x[doubtful] for spec, x in inputs.items()}
        recognizer._calibrated_readings(recognizer._logits(again, "fp32"))
    t["rereads"] = time.perf_counter() - t0
    return {**{k: round(v * 1000 / batch_size, 2) for k, v in t.items()}, "reread_share": len(doubtful) / batch_size}


def reference_ms(recognizer: Recognizer, runs: int = 15, warmup: int = 3) -> float:
    """The plain PyTorch reference: the weights' trunk (timm, same input and stride) in fp32, NCHW,
    batch 1, under inference_mode, the same threads; median of `runs` after `warmup`."""
    form, model = next(iter(recognizer.models.items()))
    spec = recognizer.infos[form].spec
    trunk = copy.deepcopy(model.trunk).float().eval().to(memory_format=torch.contiguous_format)
    x = torch.randn(1, 3, spec.height, spec.width)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            trunk(x)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def compare(recognizer: Recognizer, encoded: list[bytes], runs: int = 50, batch_size: int = 32) -> dict:
    """Every engine these weights can run here, timed in the same run on the images' encoded bytes
    (decode included), with each one's single-image p50 over the plain PyTorch reference and where
    its batch time goes."""
    from . import onnx_trunk
    from .recognizer import bf16_is_fast
    ways = [("torch", "fp32")] + ([("torch", "bf16")] if bf16_is_fast() else [])
    if onnx_trunk.available():
        ways += [("onnx", "fp32")] + ([("onnx-int8", "auto")] if all(i.int8.get("ranges") for i in recognizer.infos.values()) else [])
    reference = reference_ms(recognizer)
    rows = {}
    for engine, precision in ways:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = Recognizer(recognizer.models, recognizer.infos, precision=precision, engine=engine)
        except Exception as e:  # e.g. an int8 trunk that failed its check: say so in its row
            rows[f"{engine} {precision}"] = {"error": str(e)}
            continue
        result = bench(rec, encoded, runs=runs, batch_size=batch_size)
        name = engine if engine == "onnx-int8" else f"{engine} {rec.precision}"
        rows[name] = {"single_image": result["single_image"], "batch": result["batch"],
                      "ratio_to_reference": round(result["single_image"]["p50_ms"] / reference, 3),
                      "batch_ms_per_image": stages(rec, encoded, batch_size)}
    return {"reference_ms": round(reference, 2), "threads": torch.get_num_threads(), "engines": rows}


def train_throughput(form: str, spec, arch: str = "resnet50", bf16: bool = True, batch_size: int = 32,
                     steps: int = 4) -> float:
    """Images/s of full training steps as train.py runs them (uint8 batch -> augmented input, forward,
    loss, backward, AdamW) on random pixels, channels-last.

    `form` is one_go, sequential or joint (both heads on one trunk, as train.py --form joint).
    The first step (allocation, kernel selection) is not counted.
    """
    from . import training
    from .models import build_model
    model = build_model(form, spec, arch=arch).to(memory_format=torch.channels_last).train()
    optimizer = training.make_optimizer(model, lr=1e-3, weight_decay=0.05)
    pixels = torch.randint(0, 256, (batch_size, 3, spec.height, spec.width), dtype=torch.uint8)
    y = torch.randint(0, spec.num_classes, (batch_size, spec.length))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        x = training.to_input(pixels, "cpu", augment=True)
        training.train_step(model, optimizer, x, y, 0.05, torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16))
        times.append(time.perf_counter() - t0)
    return batch_size / float(np.median(times[1:]))
