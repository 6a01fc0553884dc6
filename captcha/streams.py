"""Images drawn by other processes while training runs: a data source for generators we cannot import.

The PyPI `captcha` library shares our package's name, so its ImageCaptcha runs in an environment
of its own (recipes/imagecaptcha/stream.py) and sends what it draws down a pipe. A worker is a
command; its standard output is a sequence of records:

    uint16 label bytes, uint16 width, uint16 height (little-endian), the label (UTF-8),
    then height x width x 3 RGB bytes, rows top to bottom.

`StreamBuffer` starts the workers, turns every record into model pixels with `spec.geometry` (the
one road for an image), and keeps them all in a buffer on the training device; batches are drawn
from everything received so far, since a GPU trains faster than the CPUs draw. Records are read
and cropped in DataLoader processes, not threads: fourteen threads decoding beside the training
loop hold the GIL so often that a GPU step took ten times as long.
"""
from __future__ import annotations

import shlex
import struct
import subprocess
import threading
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .errors import CaptchaError, DatasetError
from .spec import CaptchaSpec

HEADER = struct.Struct("<HHH")


def write_record(out, label: str, image: Image.Image) -> None:
    """One record, as a worker writes it (a worker that cannot import this package writes the same bytes)."""
    image = image.convert("RGB")
    text = label.encode("utf-8")
    out.write(HEADER.pack(len(text), *image.size) + text + image.tobytes())


def read_records(stream, spec: CaptchaSpec, name: str = "stream"):
    """Records from a binary stream -> (uint8 pixels [3, H, W], targets) until the stream ends."""
    while True:
        head = _read_exactly(stream, HEADER.size)
        if head is None:
            return
        n, width, height = HEADER.unpack(head)
        body = _read_exactly(stream, n + width * height * 3)
        if body is None:
            raise DatasetError(f"{name}: ended in the middle of a record")
        label = bytes(body[:n]).decode("utf-8", errors="replace")
        try:
            targets = torch.tensor(spec.encode(label))
        except CaptchaError as e:
            raise DatasetError(f"{name}: {e}; the stream must draw {spec.describe()}") from None
        image = Image.frombuffer("RGB", (width, height), bytes(body[n:]), "raw", "RGB", 0, 1)
        yield spec.geometry(image), targets


def _read_exactly(stream, n: int):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:])
        if not k:
            return None
        got += k
    return buf


def _start(command: str) -> subprocess.Popen:
    try:
        return subprocess.Popen(shlex.split(command), stdout=subprocess.PIPE, bufsize=0)
    except OSError as e:
        raise DatasetError(f"stream command {command!r} cannot start: {e}") from None


def read_all(commands: list[str], spec: CaptchaSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Run each command to its end (each draws a fixed set, e.g. validation images), all at once;
    -> (pixels [N, 3, H, W] uint8, targets [N, length])."""
    results, errors = [None] * len(commands), []

    def run(k, command):
        proc = _start(command)
        try:
            results[k] = list(read_records(proc.stdout, spec, name=command))
        except DatasetError as e:
            errors.append(str(e))
        if proc.wait() != 0:
            errors.append(f"stream command {command!r} failed (exit {proc.returncode})")

    threads = [threading.Thread(target=run, args=(k, c), daemon=True) for k, c in enumerate(commands)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = [r for result in results if result for r in result]
    if errors or not records:
        raise DatasetError("; ".join(errors) or f"the stream commands {commands} sent no images")
    return torch.stack([r[0] for r in records]), torch.stack([r[1] for r in records])


class StreamDataset(IterableDataset):
    """Each DataLoader worker runs its share of the commands and yields chunks of their records."""

    def __init__(self, commands: list[str], spec: CaptchaSpec, chunk: int = 16):
        self.commands, self.spec, self.chunk = commands, spec, chunk

    def __iter__(self):
        info = get_worker_info()
        mine = self.commands[info.id::info.num_workers] if info else self.commands
        procs = [_start(command) for command in mine]
        readers = [read_records(proc.stdout, self.spec, name=command) for proc, command in zip(procs, mine)]
        try:
            while True:
                for proc, command, reader in zip(procs, mine, readers):
                    chunk = [record for _, record in zip(range(self.chunk), reader)]
                    if len(chunk) < self.chunk:
                        raise DatasetError(f"stream command {command!r} ended (exit {proc.wait()})")
                    yield torch.stack([r[0] for r in chunk]), torch.stack([r[1] for r in chunk])
        finally:
            for proc in procs:
                proc.kill()


class StreamBuffer:
    """Worker commands -> a buffer of up to `capacity` images on `device`; `sample` draws batches from it.

    Once full, the oldest images are overwritten. Copies to a GPU go on a stream of their own,
    so images never wait behind the training step.
    """

    def __init__(self, commands: list[str], spec: CaptchaSpec, capacity: int, device, chunk: int = 16):
        self.commands, self.spec, self.device, self.chunk = commands, spec, torch.device(device), chunk
        self.capacity = max(chunk, capacity // chunk * chunk)
        self.pixels = torch.empty((self.capacity, 3, spec.height, spec.width), dtype=torch.uint8, device=self.device)
        self.targets = torch.empty((self.capacity, spec.length), dtype=torch.long, device=self.device)
        self.received = 0  # images received in all
        self.ready = 0     # slots that hold an image
        self.errors: list[str] = []
        self.closing = False
        self.copy_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self.loader = DataLoader(StreamDataset(commands, spec, chunk), batch_size=None, num_workers=len(commands),
                                 pin_memory=self.device.type == "cuda", persistent_workers=False)
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> "StreamBuffer":
        self.thread.start()
        return self

    def _read(self):
        self.iterator = iter(self.loader)
        try:
            for pixels, targets in self.iterator:
                if self.closing:
                    break
                self._store(pixels, targets)
        except Exception as e:  # reported by the trainer through `errors`
            if not self.closing:
                self.errors.append(str(e).strip().splitlines()[-1])

    def _store(self, pixels, targets):
        slot, n = self.received % self.capacity, len(pixels)
        if self.copy_stream is not None:
            with torch.cuda.stream(self.copy_stream):
                self.pixels[slot: slot + n].copy_(pixels, non_blocking=True)
                self.targets[slot: slot + n].copy_(targets, non_blocking=True)
            self.copy_stream.synchronize()
        else:
            self.pixels[slot: slot + n].copy_(pixels)
            self.targets[slot: slot + n].copy_(targets)
        self.received += n
        self.ready = min(self.capacity, self.received)

    def wait(self, count: int, timeout: float = 300.0) -> None:
        """Until `count` images are in, or fail naming the workers that stopped."""
        deadline = time.monotonic() + timeout
        while self.ready < count:
            if self.errors or not self.thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise DatasetError(f"the training streams sent {self.ready} of the {count} images needed to "
                                   f"start: {'; '.join(self.errors) or 'no error, only too slow'}")
            time.sleep(0.05)

    def sample(self, batch_size: int, generator: torch.Generator | None = None):
        """A batch drawn uniformly from every image in the buffer -> (pixels, targets) on the device."""
        if self.ready == 0:
            raise DatasetError(f"the training streams sent nothing: {'; '.join(self.errors)}")
        index = torch.randint(0, self.ready, (batch_size,), generator=generator,
                              device=generator.device if generator is not None else "cpu").to(self.device)
        return self.pixels[index], self.targets[index]

    def close(self) -> None:
        """Stop the workers (the DataLoader's processes kill their commands) and the reader."""
        self.closing = True
        iterator = getattr(self, "iterator", None)
        if iterator is not None:
            iterator._shutdown_workers()
        self.thread.join(timeout=10)
