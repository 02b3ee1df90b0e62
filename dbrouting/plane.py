"""One prober per host: the other processes of the host follow its snapshots.

The processes of a host that share the same nodes and probe settings share a *plane*: files in
``DBROUTING["RUNTIME_DIR"]`` named by a digest of both. The process holding the plane's OS file
lock (``flock``) probes, and writes each snapshot to the plane's snapshot file (written aside and
renamed into place, so a reader never sees half of one; under ``/dev/shm`` it never touches a
disk). Every other process copies the newest snapshot into its own cache and holds no database
connection of its own. The kernel drops the lock of a process that ends, ``kill -9`` included:
the next follower to try takes it. A prober that stalls (a stopped process, a stuck thread)
keeps its lock but stops touching it; the first follower to find it untouched for one interval
plus the probe timeout probes in its stead, under a second lock, until the prober comes back.

A request that sees a replica fail writes the mark-down into the shared snapshot too, so the
whole host leaves the replica at its first error. Snapshots are JSON, never pickles: the
directory must be the user's own (mode 700), or the plane is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from django.db import connections

from .assessment import DOWN, ReplicaHealth, Snapshot
from .conf import Config
from .exceptions import SettingError
from .probe import PrimaryProbe


def default_runtime_dir() -> Path:
    shm = Path("/dev/shm")  # noqa: S108 (a folder of our own inside it, mode 700, checked)
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"dbrouting-{os.geteuid()}"


def where(config: Config) -> tuple[Path, str] | None:
    """The folder and the key of the plane these settings share; None with ``PROBE_SCOPE`` "process".
    The key is a digest of the nodes (where they are, as whom) and of what the assessment depends on."""
    if config.probe_scope != "host":
        return None
    nodes = {a: {k: connections[a].settings_dict.get(k) for k in ("HOST", "PORT", "NAME", "USER")}
             for a in (config.primary, *config.replicas)}  # fmt: skip
    probe_settings = (
        config.check_interval_seconds, config.probe_timeout_seconds, config.connect_timeout_seconds,
        config.rejoin_after_checks, config.max_staleness_seconds, config.primary_outage_max_staleness_seconds,
        config.max_lag_bytes,
    )  # fmt: skip
    text = json.dumps([config.primary, config.replicas, nodes, probe_settings], sort_keys=True, default=str)
    return Path(config.runtime_dir or default_runtime_dir()), hashlib.sha256(text.encode()).hexdigest()[:20]


class Plane:
    def __init__(self, directory: Path, key: str) -> None:
        _own_directory(directory)
        self.path = directory / f"{key}.json"
        self._files = {name: directory / f"{key}.{name}" for name in ("prober", "deputy", "write")}
        self._held: dict[str, int] = {}  # lock name -> descriptor
        self._seen: tuple[int, int, int] | None = None

    # -- roles ---------------------------------------------------------------------

    def lead(self) -> bool:
        """Whether this process is the host's prober (taking the lock when it is free)."""
        if "prober" in self._held:
            return True
        if not self._lock("prober"):
            return False
        self._unlock("deputy")
        self.beat()
        return True

    def beat(self) -> None:
        """The prober is alive (touched before each stage of a round and at each snapshot)."""
        if "prober" in self._held:
            with contextlib.suppress(OSError):
                os.utime(self._files["prober"])

    def stand_in(self, config: Config) -> bool:
        """Whether this process probes in the stead of a prober that stalled (and until when it
        comes back): its lock untouched for one interval plus the probe timeout."""
        limit = config.check_interval_seconds * 1.2 + config.probe_timeout_seconds
        with contextlib.suppress(OSError):
            if time.time() - self._files["prober"].stat().st_mtime <= limit:
                self._unlock("deputy")
                return False
        return self._lock("deputy")

    def _lock(self, name: str) -> bool:
        if name in self._held:
            return True
        fd = os.open(self._files[name], os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[name] = fd
        return True

    def _unlock(self, name: str) -> None:
        fd = self._held.pop(name, None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the open file releases its flock

    def release(self) -> None:
        for name in list(self._held):
            self._unlock(name)

    def forget(self) -> None:
        """After fork: the parent's locks stay the parent's (closing our copies keeps them held)."""
        for fd in self._held.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._held = {}
        self._seen = None

    # -- snapshots -----------------------------------------------------------------

    def read(self, changed_only: bool = True) -> Snapshot | None:
        """The shared snapshot; None when there is none (or, with ``changed_only``, no newer one)."""
        try:
            with open(self.path, "rb") as f:
                info = os.fstat(f.fileno())
                seen = (info.st_ino, info.st_mtime_ns, info.st_size)
                if changed_only and seen == self._seen:
                    return None
                data = f.read()
        except FileNotFoundError:
            return None
        self._seen = seen
        return decode(data)

    def publish(self, snapshot: Snapshot, mark_down: bool = False) -> Snapshot:
        """Publish a probe round's ``snapshot`` with the mark-downs other processes published
        meanwhile, or (``mark_down``) the shared snapshot with this process's mark-downs; returns
        what was published."""
        with self._write_lock():
            current = self.read(changed_only=False)
            if current is None:
                merged = snapshot
            else:
                merged = merge(current, snapshot) if mark_down else merge(snapshot, current)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(encode(merged))
            os.replace(temporary, self.path)
            self._seen = None
        self.beat()
        return merged

    @contextlib.contextmanager
    def _write_lock(self, wait: float = 0.05) -> Any:
        """Writers one at a time, briefly; one that cannot have it in ``wait`` writes anyway (a
        writer stopped mid-write must not stop the others)."""
        fd = os.open(self._files["write"], os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.001)
            yield
        finally:
            os.close(fd)


def merge(mine: Snapshot, theirs: Snapshot) -> Snapshot:
    """``mine`` with each replica another process marked down since ``mine`` last measured it."""
    replicas = dict(mine.replicas)
    for alias, health in theirs.replicas.items():
        own = replicas.get(alias)
        if own is None or (
            health.state == DOWN and health.marked_down_at > max(own.marked_down_at, own.measured_at or 0.0)
        ):
            replicas[alias] = health
    if replicas == dict(mine.replicas):
        return mine
    return Snapshot(replicas, mine.primary, mine.last_good)


def encode(snapshot: Snapshot) -> bytes:
    def probe(p: PrimaryProbe | None) -> dict[str, Any] | None:
        return None if p is None else dataclasses.asdict(p)

    return json.dumps({
        "replicas": {alias: dataclasses.asdict(h) for alias, h in snapshot.replicas.items()},
        "primary": probe(snapshot.primary),
        "last_good": probe(snapshot.last_good),
    }).encode()  # fmt: skip


def decode(data: bytes) -> Snapshot | None:
    """The snapshot in ``data``; None when it is not one (a file of another version, say)."""
    try:
        raw = json.loads(data)
        replicas = {
            alias: ReplicaHealth(**{**h, "window": tuple(tuple(w) for w in h["window"])})
            for alias, h in raw["replicas"].items()
        }
        primary, last_good = (None if p is None else PrimaryProbe(**p) for p in (raw["primary"], raw["last_good"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return Snapshot(replicas, primary, last_good)


def _own_directory(directory: Path) -> None:
    """Make ``directory`` (mode 700) or check that it is this user's alone."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        message = f"DBROUTING['RUNTIME_DIR'] {str(directory)!r} cannot be used ({exc})"
        raise SettingError(message, "dbrouting.W005") from exc
        raise SettingError(message, "dbrouting.W005") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise SettingError(
            f"DBROUTING['RUNTIME_DIR'] {str(directory)!r} must be a folder of this user's only (mode 700): "
            "another user could feed the router false health", "dbrouting.W005",
        )  # fmt: skip
