"""Faults under load: the app under gunicorn, a real HTTP load of mixed reads and writes from
clients that check their own writes, and a TCP proxy that can cut a replica off the network."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIGURES: dict[str, dict[str, float]] = {}  # scenario -> figures, printed at the end of the run


@dataclass
class Outcome:
    requests: int = 0
    read_errors: int = 0
    write_errors: int = 0  # 5xx other than a clean 503 + Retry-After
    writes_unavailable: int = 0  # clean 503 + Retry-After
    ryw_violations: int = 0
    hung: int = 0  # requests slower than the client timeout
    latencies: list[float] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    # (start, method, status, seconds, pinned: the client's causal token was a pin, see causal.pin)
    events: list[tuple[float, str, int, float, bool]] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, message: str) -> None:
        if len(self.samples) < 10:
            self.samples.append(message)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Client(threading.Thread):
    """One user: 10% writes, and reads that often fetch its own latest gist back."""

    def __init__(self, base: str, outcome: Outcome, stop: threading.Event, seed: int, timeout: float = 15.0) -> None:
        super().__init__(daemon=True)
        self.base, self.outcome, self.stop_event, self.timeout = base, outcome, stop, timeout
        self.rng = random.Random(seed)
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.mine: list[str] = []
        self.seed = seed

    def token(self) -> str:
        """This client's causal token as its cookie holds it (for error samples)."""
        values = [c.value for c in self.cookies if c.name == "dbrouting_causal"]
        return values[0].split(":")[0].strip('"') if values else "-"

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        pinned = self.token().startswith("FFFFFFFF/FFFFFFFF")
        start = time.monotonic()
        try:
            with self.opener.open(req, timeout=self.timeout) as response:
                status, headers, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, headers, raw = exc.code, dict(exc.headers), exc.read()
        except TimeoutError:
            status, headers, raw = 0, {}, b"timeout"
        except OSError as exc:  # urllib wraps a timeout in URLError
            timed_out = isinstance(getattr(exc, "reason", None), TimeoutError)
            status, headers, raw = (0 if timed_out else -1), {}, str(exc).encode()
        elapsed = time.monotonic() - start
        with self.outcome.lock:
            self.outcome.requests += 1
            self.outcome.latencies.append(elapsed)
            self.outcome.events.append((start, method, status, elapsed, pinned))
            if status == 0:
                self.outcome.hung += 1
        try:
            payload = json.loads(raw) if raw and status > 0 else {}
        except ValueError:
            payload = {}
        return status, headers, payload

    def run(self) -> None:
        while not self.stop_event.is_set():
            roll = self.rng.random()
            if roll < 0.1:
                self.write()
            elif roll < 0.5 and self.mine:
                self.read_own()
            elif roll < 0.75:
                self.read("/api/gists/?page_size=10")
            else:
                lat, lng = self.rng.uniform(48.7, 49.0), self.rng.uniform(2.2, 2.5)
                self.read(f"/api/gists/nearby/?lat={lat:.4f}&lng={lng:.4f}&radius_m=3000&limit=10")

    def write(self) -> None:
        body = {"title": "chaos", "content": "c", "latitude": 48.85, "longitude": 2.35}
        status, headers, payload = self.request("POST", "/api/gists/", body)
        with self.outcome.lock:
            if status == 201:
                self.mine.append(payload["gist_id"])
                self.outcome.acked.append(payload["gist_id"])
            elif status == 503 and "Retry-After" in headers:
                self.outcome.writes_unavailable += 1
            else:
                self.outcome.write_errors += 1
                self.outcome.note(f"POST -> {status} {payload}")

    def read_own(self) -> None:
        gist_id = self.mine[-1]
        status, _, payload = self.request("GET", f"/api/gists/{gist_id}/")
        with self.outcome.lock:
            if status == 404:
                self.outcome.ryw_violations += 1
                self.outcome.note(f"own gist {gist_id} not found")
            elif status != 200:
                self.outcome.read_errors += 1
                self.outcome.note(f"client {self.seed} GET own -> {status} token={self.token()} {payload}")

    def read(self, path: str) -> None:
        status, _, payload = self.request("GET", path)
        if status != 200:
            with self.outcome.lock:
                self.outcome.read_errors += 1
                self.outcome.note(
                    f"client {self.seed} GET {path.split('?')[0]} -> {status} token={self.token()} {payload}"
                )


class BlackholeProxy:
    """A TCP proxy in front of a replica. ``cut()`` makes it a network partition: nothing is
    forwarded any more and no new connection is answered (a client's connect hangs, as against
    a host that drops packets); ``heal()`` resets what was open and serves again."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.closed = False
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            self.open.wait()
            try:
                self.listener.settimeout(0.2)
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self.closed:
                if not self.open.is_set():
                    time.sleep(0.05)  # partitioned: hold the bytes, answer nothing
                    continue
                readable, _, _ = select.select([a, b], [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        self.open.clear()

    def heal(self) -> None:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:  # a long partition ends in resets for what was open
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.open.set()

    def close(self) -> None:
        self.closed = True
        self.heal()
        self.listener.close()


def run_load(base: str, clients: int, seconds: float, fault: object, seed: int) -> Outcome:
    """Load for ``seconds``; ``fault(elapsed_fraction_reached)`` is called from this thread."""
    outcome = Outcome()
    stop = threading.Event()
    workers = [Client(base, outcome, stop, seed + i) for i in range(clients)]
    for w in workers:
        w.start()
    try:
        fault(seconds)  # type: ignore[operator]
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    return outcome


def record(name: str, outcome: Outcome, lost: int) -> dict[str, float]:
    figures = {
        "requests": outcome.requests,
        "read_errors": outcome.read_errors,
        "write_errors": outcome.write_errors,
        "writes_unavailable": outcome.writes_unavailable,
        "acked_writes": len(outcome.acked),
        "lost_writes": lost,
        "ryw_violations": outcome.ryw_violations,
        "hung": outcome.hung,
        "p50_ms": round(outcome.percentile(0.50), 1),
        "p99_ms": round(outcome.percentile(0.99), 1),
        "max_ms": round(max(outcome.latencies, default=0.0) * 1000, 1),
    }
    FIGURES[name] = figures
    return figures


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(settings_dict: dict, port: int | None = None) -> str:
    d = settings_dict
    return f"postgres://{d['USER']}:{d['PASSWORD']}@{d['HOST']}:{port or d['PORT']}/{d['NAME']}"


@contextlib.contextmanager
def gunicorn(env: dict[str, str], workers: int = 2, log_path: Path | None = None) -> Iterator[str]:
    """The app under gunicorn on a free loopback port; yields its base URL. Its stderr (gunicorn's
    own log: worker timeouts, the app's log lines) goes to ``log_path`` if given."""
    port = free_port()
    full_env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "false",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        # Load from one address: the per-address limits would answer most writes 429 (tests/test_ratelimits.py).
        "RATELIMIT_ENABLE": "false",
        **env,
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"]
    with serve(command, full_env, port, log_path) as base:
        yield base


@contextlib.contextmanager
def serve(command: list[str], env: dict[str, str], port: int, log_path: Path | None = None) -> Iterator[str]:
    """``command``, run in the project's folder with ``env`` over this process's environment, once
    it serves ``/api/gists/`` on 127.0.0.1:``port``; yields its base URL and stops it afterwards."""
    log = open(log_path or os.environ.get("CHAOS_SERVER_LOG", os.devnull), "a")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/gists/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{' '.join(command[1:])} did not start serving on port {port}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
