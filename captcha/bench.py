"""How fast a Recognizer reads on this machine: single-image latency and batch throughput."""
from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch

from .recognizer import Recognizer


def _percentiles(times_ms: list[float]) -> dict:
    a = np.asarray(times_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "mean_ms": round(float(a.mean()), 2)}


def bench(recognizer: Recognizer, image, runs: int = 50, warmup: int = 5, batch_size: int = 32,
          batches: int = 3) -> dict:
    """Latency of `predict(image)` (decode + both forms) and images/s of `predict_batch`."""
    for _ in range(warmup):
        recognizer.predict(image)
    single = []
    for _ in range(runs):
        t0 = time.perf_counter()
        recognizer.predict(image)
        single.append((time.perf_counter() - t0) * 1000)
    recognizer.predict_batch([image] * batch_size, batch_size)
    t0 = time.perf_counter()
    for _ in range(batches):
        recognizer.predict_batch([image] * batch_size, batch_size)
    throughput = batches * batch_size / (time.perf_counter() - t0)
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
        "single_image": {"runs": runs, **_percentiles(single)},
        "batch": {"batch_size": batch_size, "images_per_s": round(throughput, 1)},
    }


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
