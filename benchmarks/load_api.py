"""Bounded load test of the HTTP API under uvicorn, on 127.0.0.1 only.

    .venv/bin/python -m benchmarks.load_api                           # 500 requests, 8 at a time
    .venv/bin/python -m benchmarks.load_api --requests 100 --concurrency 4 --json

Starts `uvicorn functions.api.app:app` as a child process on a free 127.0.0.1 port (one worker:
sync endpoints run in its thread pool, so requests really overlap inside one process and
share its models), sends a fixed number of requests with httpx, then stops the server by
itself. The mix is mostly real photos (package sample photos, JSON and image output) with
some uploads that must be refused (tests/corpus.py). It reports the status counts, the
5xx count, p50/p95/p99 latency, throughput and the server's peak resident memory (VmHWM),
and checks that every response for the same photo is the same answer: a race in a shared
model (LiteRT interpreter, YuNet) shows up as a different box or score.

Exit status 0 only with zero 5xx, zero transport errors and consistent answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
#: Hard bound on one run, whatever the arguments: the script always stops by itself.
MAX_SECONDS = 900


@dataclass(frozen=True)
class Payload:
    """One kind of request of the mix."""

    name: str
    body: bytes
    query: str
    expect: int  # the status a correct server answers


def payloads() -> list[Payload]:
    """The request mix: photos as JSON and as image output, and uploads that must be refused."""
    import matplotlib
    import skimage

    from tests.corpus import by_name

    data = Path(skimage.__file__).parent / "data"
    photos = {
        "chelsea": (data / "chelsea.png").read_bytes(),
        "astronaut": (data / "astronaut.png").read_bytes(),
        "coffee": (data / "coffee.png").read_bytes(),
        "hopper": (Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").read_bytes(),
    }
    mix = []
    for name, body in photos.items():
        mix.append(Payload(f"{name}.json", body, "ratios=1:1,16:9,4:5,9:16", 200))
        mix.append(Payload(f"{name}.image", body, "ratio=4:5&output=image&size=400x500", 200))
    for name, status in (("random.jpg", 415), ("truncated.jpg", 415), ("page.jpg", 415),
                         ("bomb_30000x30000.png", 413)):  # fmt: skip
        mix.append(Payload(name, by_name(name).data, "ratios=1:1", status))
    return mix


@dataclass
class Report:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    answers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    seconds: float = 0.0
    server_peak_rss_mb: float | None = None

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def inconsistent(self) -> list[str]:
        return sorted(name for name, seen in self.answers.items() if len(seen) > 1)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]

    @property
    def ok(self) -> bool:
        return not (self.server_errors or self.transport_errors or self.inconsistent
                    or self.unexpected)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "server_errors_5xx": self.server_errors,
            "unexpected_statuses": dict(self.unexpected),
            "transport_errors": dict(self.transport_errors),
            "inconsistent_answers": self.inconsistent,
            "latency_ms": {
                "p50": round(self.percentile(50), 1),
                "p95": round(self.percentile(95), 1),
                "p99": round(self.percentile(99), 1),
                "max": round(max(self.latencies_ms, default=float("nan")), 1),
                "mean": round(statistics.fmean(self.latencies_ms), 1) if self.latencies_ms else None,
            },
            "seconds": round(self.seconds, 2),
            "requests_per_second": round(self.requests / self.seconds, 2) if self.seconds else None,
            "server_peak_rss_mb": self.server_peak_rss_mb,
        }


def answer_of(payload: Payload, response: httpx.Response) -> str:
    """What must not change between two requests for the same photo (no timings)."""
    if response.status_code != 200:
        return f"{response.status_code}:{response.json().get('error')}"
    if response.headers.get("content-type", "").startswith("image/"):
        return f"{response.headers['x-autocrop-box']}@{response.headers['x-autocrop-score']}"
    body = response.json()
    return json.dumps([(c["ratio"], c["box"], round(c["score"], 6)) for c in body["crops"]])


async def run_load(base_url: str, n_requests: int, concurrency: int, mix: list[Payload], deadline: float) -> Report:
    """`n_requests` requests cycling through `mix`, `concurrency` in flight at a time."""
    report = Report()
    queue: asyncio.Queue[Payload] = asyncio.Queue()
    for i in range(n_requests):
        queue.put_nowait(mix[i % len(mix)])
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty() and time.monotonic() < deadline:
                payload = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.post(
                        f"/v1/crop?{payload.query}",
                        content=payload.body,
                        headers={"content-type": "application/octet-stream"},
                    )
                except httpx.HTTPError as e:
                    report.transport_errors[type(e).__name__] += 1
                    continue
                finally:
                    report.requests += 1
                report.latencies_ms.append((time.perf_counter() - started) * 1000)
                report.statuses[response.status_code] += 1
                if response.status_code != payload.expect:
                    report.unexpected[f"{payload.name}:{response.status_code}"] += 1
                report.answers[payload.name].add(answer_of(payload, response))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        report.seconds = time.perf_counter() - started
    return report


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "functions.api.app:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become healthy")


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (the peak resident set) of a live process, in MB (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def load_test(n_requests: int = 500, concurrency: int = 8, warmup: int = 4) -> Report:
    """Start the server, warm it, run the load, read its peak memory, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port)
    deadline = time.monotonic() + MAX_SECONDS
    try:
        wait_healthy(url, server)
        mix = payloads()
        # warm-up: models loaded once (a warm Lambda), not counted
        asyncio.run(run_load(url, warmup, 1, mix[:2], deadline))
        report = asyncio.run(run_load(url, n_requests, concurrency, mix, deadline))
        report.server_peak_rss_mb = peak_rss_mb(server.pid)
        return report
    finally:
        stop_server(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bounded load test of the API on 127.0.0.1.")
    parser.add_argument("--requests", type=int, default=500, help="how many (default 500)")
    parser.add_argument("--concurrency", type=int, default=8, help="in flight (default 8)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 10_000 or not 1 <= args.concurrency <= 64:
        parser.error("--requests must be in 1..10000 and --concurrency in 1..64")
    report = load_test(args.requests, args.concurrency)
    summary = report.to_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        lat = summary["latency_ms"]
        print(f"{summary['requests']} requests, concurrency {args.concurrency}, "
              f"{summary['seconds']} s ({summary['requests_per_second']} req/s)")  # fmt: skip
        print(f"statuses {summary['statuses']}; 5xx: {summary['server_errors_5xx']}; "
              f"transport errors: {summary['transport_errors'] or 0}")  # fmt: skip
        print(f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
              f"max {lat['max']} ms")  # fmt: skip
        print(f"server peak RSS {summary['server_peak_rss_mb']} MB")
        print(
            f"answers consistent across concurrent requests: {not report.inconsistent}"
            + (f" (differ: {report.inconsistent})" if report.inconsistent else "")
        )
        if report.unexpected:
            print(f"unexpected statuses: {dict(report.unexpected)}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
