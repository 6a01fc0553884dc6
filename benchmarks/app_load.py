"""The app under a bounded local load: requests/s and latency of POST /api/predict.

    python benchmarks/app_load.py                         # 8 clients, 60 s, the shipped weights
    python benchmarks/app_load.py --clients 8 --seconds 60 --weights runs/mine --image data/9oFyb.png

Starts `python app.py` on a free loopback port (nothing leaves this machine), waits for
/api/health, then runs --clients concurrent clients (httpx, one connection each), each posting the
image and waiting for its answer, for --seconds; prints requests/s, p50/p95/max latency, errors,
and how many images the server read together on average (its /api/health says). Every answer is
checked against the first one: the same image must read the same under load.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(ROOT / "weights"))
    p.add_argument("--image", type=Path, default=sorted((ROOT / "data").glob("*.png"))[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--app-args", default="", help="more app.py options, e.g. --threads 2")
    args = p.parse_args(argv)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--weights", args.weights, "--host", "127.0.0.1",
                               "--port", str(port), *args.app_args.split()], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                health = httpx.get(f"{url}/api/health", timeout=2).json()
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the app did not start: {server.stderr.read()[-2000:]}")
                time.sleep(0.5)
        data = args.image.read_bytes()
        first = httpx.post(f"{url}/api/predict", files={"file": (args.image.name, data)}, timeout=60).json()
        expected = first["answer"]["text"]
        latencies, errors, wrong = [], [], 0
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds

        def client():
            nonlocal wrong
            with httpx.Client(timeout=60) as c:
                while time.monotonic() < stop:
                    t0 = time.perf_counter()
                    try:
                        r = c.post(f"{url}/api/predict", files={"file": (args.image.name, data)})
                        ok = r.status_code == 200
                        body = r.json() if ok else None
                    except httpx.HTTPError as e:
                        ok, body = False, str(e)
                    ms = (time.perf_counter() - t0) * 1000
                    with lock:
                        if ok:
                            latencies.append(ms)
                            wrong += body["answer"]["text"] != expected
                        else:
                            errors.append(body or r.status_code)

        t0 = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        a = np.asarray(latencies) if latencies else np.zeros(1)
        after = httpx.get(f"{url}/api/health", timeout=10).json()
        result = {"clients": args.clients, "seconds": round(elapsed, 1), "requests": len(latencies),
                  "requests_per_s": round(len(latencies) / elapsed, 1), "errors": len(errors),
                  "different_answers": wrong, "p50_ms": round(float(np.percentile(a, 50)), 1),
                  "p95_ms": round(float(np.percentile(a, 95)), 1), "max_ms": round(float(a.max()), 1),
                  "read_together": after.get("read_together"), "runtime": health["runtime"],
                  "cpu_count": os.cpu_count()}
        print(json.dumps(result, indent=2))
        return 0 if not errors and not wrong else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
