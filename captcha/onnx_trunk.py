"""Run a trunk with ONNX Runtime: the fast fp32 path on CPUs without native bf16.

On a 2-core AVX2-only CPU (no AVX-512, so no bf16 units) PyTorch's eager fp32 ResNet-50 takes
about 82 ms per 96x256 image; the same trunk exported to ONNX and run by ONNX Runtime takes about
40 ms, with outputs equal to within 1e-5. Only the trunk goes through ONNX: the heads are a few
milliseconds and stay in PyTorch, where the sequential form also returns its attention maps.

Exporting ResNet-50 (torch.onnx.export, the torch.export-based exporter) takes several seconds,
so the exported graph is cached on disk under $CAPTCHA_CACHE/onnx (default ~/.cache/captcha/onnx),
named by a hash of the trunk's weights, its architecture, its input size and the library
versions; a cache that cannot be written only costs the export next time.
"""
from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


def available() -> bool:
    """Whether ONNX Runtime and the exporter's packages are installed (found, not imported: onnxscript
    takes a second to import and is only needed when a trunk is not in the cache yet)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnxscript", "onnx"))


def cache_dir() -> Path:
    return Path(os.environ.get("CAPTCHA_CACHE") or Path.home() / ".cache" / "captcha") / "onnx"


def trunk_key(trunk: nn.Module, input_chw: tuple[int, int, int]) -> str:
    """A name that changes whenever the exported graph could: weights, layers, input size, versions."""
    h = hashlib.sha256()
    versions = [torch.__version__] + [importlib.metadata.version(p) for p in ("onnxscript", "onnx")]
    h.update(repr((str(trunk), tuple(input_chw), versions)).encode())
    for name, tensor in trunk.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().float().contiguous().numpy())  # the buffer itself, no copy
    return h.hexdigest()[:32]


def export(trunk: nn.Module, input_chw: tuple[int, int, int]) -> bytes:
    """The trunk as an ONNX model with a free batch dimension, fp32, NCHW input `x` (the trunk is left as it was)."""
    trunk = copy.deepcopy(trunk).float().eval().to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, *input_chw)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's progress notes, not problems
        program = torch.onnx.export(trunk, (example,), input_names=["x"], output_names=["features"],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
                                    verbose=False, report=False)
    return program.model_proto.SerializeToString()


def load_or_export(trunk: nn.Module, input_chw: tuple[int, int, int]) -> bytes:
    path = cache_dir() / f"trunk-{trunk_key(trunk, input_chw)}.onnx"
    if path.is_file():
        return path.read_bytes()
    data = export(trunk, input_chw)
    part = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as f:
            part = Path(f.name)
            f.write(data)
        os.replace(part, path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        if part is not None:
            part.unlink(missing_ok=True)
    return data


class OnnxTrunk:
    """Callable like the trunk it was made from: [B, 3, H, W] tensor -> [B, C, h, w] fp32 features.

    Thread-safe (ONNX Runtime sessions allow concurrent runs), like the Recognizer that holds it.
    """

    def __init__(self, trunk: nn.Module, input_chw: tuple[int, int, int], threads: int | None = None,
                 graph: bytes | None = None):
        """`graph`: an ONNX graph of this trunk to run instead of its fp32 export (the int8 one)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # No busy-waiting after a run: the heads run in PyTorch right after, on the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph or load_or_export(trunk, input_chw), options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(x.detach().float().numpy())
        return torch.from_numpy(self.session.run(None, {"x": x})[0])
