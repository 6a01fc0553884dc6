"""Run a model with ONNX Runtime: the fast fp32 path on CPUs without native bf16, and the int8 one.

On a 2-core AVX2-only CPU (no AVX-512, so no bf16 units) PyTorch's eager fp32 ResNet-50 takes
about 82 ms per 96x256 image; the same trunk exported to ONNX and run by ONNX Runtime takes about
40 ms, with outputs equal to within 1e-5.

A trunk and the heads of the forms that read it are exported as two graphs and run as one
(`OnnxReader`): the int8 engine swaps only the trunk's graph (its ranges are measured on the trunk
alone, captcha/int8.py), and its fp32 re-reads of doubtful images use the fp32 trunk with the same
fp32 heads. The heads run in ONNX Runtime, not in PyTorch: a PyTorch op leaves PyTorch's worker
threads spinning on the cores ONNX Runtime needs next, and its eager ops each cost their dispatch.
On a 2-core AVX512-VNNI EPYC, one image's int8 trunk plus heads took 5.8 ms in ONNX Runtime
against 8.6 ms with the heads in PyTorch.

Exporting ResNet-50 (torch.onnx.export, the torch.export-based exporter) takes several seconds,
so each exported graph is cached on disk under $CAPTCHA_CACHE/onnx (default ~/.cache/captcha/onnx),
named by a hash of the module's weights, its layers, its input size and the library versions;
a cache that cannot be written only costs the export next time.
"""
from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import importlib.util
import inspect
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


def trunk_key(trunk: nn.Module, input_chw: tuple[int, int, int], extra: str = "") -> str:
    """A name that changes whenever the exported graph could: weights, layers, input size, versions
    (and `extra`: what else shapes it, such as a head's spec)."""
    h = hashlib.sha256()
    versions = [torch.__version__] + [importlib.metadata.version(p) for p in ("onnxscript", "onnx")]
    h.update(repr((str(trunk), tuple(input_chw), versions, extra)).encode())
    for name, tensor in trunk.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().float().contiguous().numpy())  # the buffer itself, no copy
    return h.hexdigest()[:32]


def export(trunk: nn.Module, input_chw: tuple[int, int, int], names: tuple = ("x", "features")) -> bytes:
    """The module as an ONNX model with a free batch dimension, fp32, NCHW input (the module is left
    as it was). `names`: the input's name, then the outputs'."""
    trunk = copy.deepcopy(trunk).float().eval().to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, *input_chw)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's progress notes, not problems
        program = torch.onnx.export(trunk, (example,), input_names=[names[0]], output_names=list(names[1:]),
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
                                    verbose=False, report=False)
    return program.model_proto.SerializeToString()


def load_or_export(trunk: nn.Module, input_chw: tuple[int, int, int], names: tuple = ("x", "features"),
                   kind: str = "trunk", extra: str = "") -> bytes:
    """The exported graph from the cache, or exported now and cached (`kind` starts its file name)."""
    path = cache_dir() / f"{kind}-{trunk_key(trunk, input_chw, extra)}.onnx"
    if path.is_file():
        return path.read_bytes()
    data = export(trunk, input_chw, names)
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


def session(graph: bytes, threads: int | None = None):
    """An ONNX Runtime session on `threads` threads (default: torch's count). Its worker threads
    busy-wait between the operators of a run, and stop when the run returns: left spinning, they
    would hold the cores that the next image's decoding, PyTorch or the re-reading session need.
    Measured (int8 engine, one image at a time, re-reads included, 3 runs each): mean 8.7-9.6 ms
    this way, 9.2-10.4 never spinning, 9.6-10.1 spinning on after each run (p95 22-24 against 34-36)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class _Heads(nn.Module):
    """Forms without their trunk, reading the same features: features -> each form's logits, and the
    sequential form's attention maps after its logits."""

    def __init__(self, models: dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList()
        for model in models.values():
            part = copy.copy(model)  # shares every layer, but not the module table it changes
            part._modules = {**model._modules, "trunk": nn.Identity()}
            self.parts.append(part)

    def forward(self, features: torch.Tensor):
        out = []
        for part in self.parts:
            out.extend(part.read_with_maps(features) if hasattr(part, "read_with_maps") else [part.read(features)])
        return tuple(out)


def heads_graph(models: dict[str, nn.Module], features_chw: tuple[int, int, int]) -> tuple[bytes, list]:
    """The heads of `models` (forms reading the same features) as one graph, exported or from the
    cache, and its outputs: (form, "logits" or "maps") in order, named `form.logits`, `form.maps`."""
    outputs = []
    for form, model in models.items():
        outputs += [(form, "logits")] + ([(form, "maps")] if hasattr(model, "read_with_maps") else [])
    names = ("features", *(f"{form}.{what}" for form, what in outputs))
    # what the graph depends on beyond the layers' weights: each form's spec and options, and the code
    extra = repr([(form, type(m).__name__, m.spec.to_json(), sorted(m.config.items())) for form, m in models.items()])
    extra += inspect.getsource(inspect.getmodule(type(next(iter(models.values())))))
    return load_or_export(_Heads(models).eval(), features_chw, names, "heads", extra), outputs


def attach(trunk: bytes, heads: bytes) -> bytes:
    """One graph: the trunk's `features` feed the heads; input `x`, the heads' outputs."""
    import onnx
    from onnx import compose

    tail = compose.add_prefix(onnx.load_from_string(heads), "heads/", rename_inputs=False, rename_outputs=False)
    return compose.merge_models(onnx.load_from_string(trunk), tail, io_map=[("features", "features")]).SerializeToString()


class OnnxReader:
    """A trunk and the heads of the forms that read it in ONNX Runtime: [B, 3, H, W] -> {form: (logits
    [B, length, classes], attention maps or None)}, along one of its trunk graphs ("fp32", and "int8"
    for the int8 engine, whose fp32 re-reads use the other).

    Each trunk graph and the heads are one session: one run per image, no features handed over in
    between (0.2 ms less than two sessions, measured). Where the heads will not export, PyTorch runs
    them on the trunk's features, with a warning. Thread-safe, like the Recognizer.
    """

    def __init__(self, trunks: dict[str, bytes], models: dict[str, nn.Module], features_chw: tuple[int, int, int],
                 threads: int | None = None):
        self.models, self.threads = models, threads
        try:
            self.heads, self.outputs = heads_graph(models, features_chw)
        except Exception as e:
            warnings.warn(f"the heads did not export to ONNX ({e}); PyTorch runs them", RuntimeWarning)
            self.heads, self.outputs = None, None
        self.sessions = {name: self._session(graph) for name, graph in trunks.items()}

    def _session(self, trunk: bytes):
        return session(trunk if self.heads is None else attach(trunk, self.heads), self.threads)

    def with_trunk(self, name: str, trunk: bytes) -> "OnnxReader":
        """This reader with one more trunk graph, sharing the sessions it has (the onnx engine's fp32
        reader becomes the int8 engine's without building its fp32 session again)."""
        other = copy.copy(self)
        other.sessions = {**self.sessions, name: self._session(trunk)}
        return other

    @property
    def heads_in_graph(self) -> bool:
        return self.outputs is not None

    def __call__(self, x: torch.Tensor, path: str = "fp32") -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        x = np.ascontiguousarray(x.detach().float().numpy())
        if self.outputs is None:
            features = torch.from_numpy(self.sessions[path].run(None, {"x": x})[0])
            with torch.inference_mode():
                return {form: m.read_with_maps(features) if hasattr(m, "read_with_maps") else (m.read(features), None)
                        for form, m in self.models.items()}
        got = self.sessions[path].run([f"{form}.{what}" for form, what in self.outputs], {"x": x})
        got = {key: torch.from_numpy(value) for key, value in zip(self.outputs, got)}
        return {form: (got[form, "logits"], got.get((form, "maps"))) for form, what in self.outputs if what == "logits"}
