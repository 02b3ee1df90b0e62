"""One prober per host: the other processes of the host follow its snapshots.

Processes with the same nodes and probe settings share a *plane*: files in ``RUNTIME_DIR`` named
by a digest of both (and of the boot: monotonic times compare within one only). The holder of
its ``flock`` probes and writes each snapshot there (renamed into place: never read half-made);
the others copy the newest and hold no connection of their own. The kernel drops the lock of a
process that ends (``kill -9`` too): the next to try takes it. A prober that stalls stops
writing its heartbeat into its lock file; the first process to find it stale probes in its
stead, under a second lock, until it comes back. A request's mark-down is written there too.
Descriptors are tracked and closed in a forked child (the parent's locks stay the parent's).
POSIX only (``fcntl``): elsewhere every process probes on its own.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .assessment import Snapshot
from .conf import Config
from .exceptions import SettingError
from .probe import connection_params
from .snapshots import SCHEMA, decode, encode, merge

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

_fds_lock = threading.Lock()  # held while a descriptor is opened and recorded, and across fork
_fds: set[int] = set()  # every descriptor the planes of this process hold


def default_runtime_dir() -> Path:
    shm = Path("/dev/shm")  # noqa: S108 (a folder of our own inside it, mode 700, checked)
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"dbrouting-{os.geteuid()}"


@functools.cache  # (read once: the boot does not change under a running process)
def _boot() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return str(round((time.time() - time.monotonic()) / 60))  # the boot's minute, elsewhere


def where(config: Config) -> tuple[Path, str] | None:
    """The folder and key of these settings' plane (None: ``PROBE_SCOPE`` "process", or no ``fcntl``):
    a digest of the nodes' libpq parameters, ``PG*`` environment, probe settings, schema and boot."""
    if config.probe_scope != "host" or fcntl is None:
        return None
    nodes = {alias: connection_params(alias, config.connect_timeout) for alias in (config.primary, *config.replicas)}
    probe_settings = (
        config.check_interval_seconds, config.probe_timeout_seconds, config.connect_timeout_seconds,
        config.rejoin_after_checks, config.max_staleness_seconds, config.primary_outage_max_staleness_seconds,
        config.max_lag_bytes,
    )  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if k.startswith("PG") and not k.startswith("PGCLUSTER")}
    text = json.dumps([SCHEMA, _boot(), config.primary, config.replicas, nodes, environment, probe_settings],
                      sort_keys=True, default=repr)  # fmt: skip
    return Path(config.runtime_dir or default_runtime_dir()), hashlib.sha256(text.encode()).hexdigest()[:20]


class Plane:
    """The files of one plane; ``OSError`` when the folder fails (the cache then probes alone)."""

    def __init__(self, directory: Path, key: str) -> None:
        own_directory(directory, create=True)
        self.directory = directory
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
        """The prober is alive: its monotonic time, in its lock file."""
        fd = self._held.get("prober")
        if fd is not None:
            os.pwrite(fd, f"{time.monotonic():<24.3f}".encode(), 0)

    def stand_in(self, config: Config) -> bool:
        """Whether to probe for a stalled prober: its heartbeat older than an interval + probe timeout."""
        limit = config.check_interval_seconds * 1.2 + config.probe_timeout_seconds
        try:
            beat = float(self._files["prober"].read_bytes() or b"0")
        except (OSError, ValueError):
            beat = 0.0
        if time.monotonic() - beat <= limit:
            self._unlock("deputy")
            return False
        return self._lock("deputy")

    def _lock(self, name: str) -> bool:
        if name in self._held:
            return True
        with _opened(self._files[name], os.O_RDWR | os.O_CREAT) as fd:
            if not _try_lock(fd):
                _close(fd)  # (taken: tried again at the next turn, on a descriptor of its own)
                return False
            self._held[name] = fd
            return True

    def _unlock(self, name: str) -> None:
        fd = self._held.pop(name, None)
        if fd is not None:
            _close(fd)  # closing the only descriptor of the open file releases its flock

    def release(self) -> None:
        for name in list(self._held):
            self._unlock(name)

    def forget(self) -> None:
        """In a forked child, its descriptors closed (``_forget_after_fork``): drop their numbers."""
        self._held, self._seen = {}, None

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
        """Publish a round's ``snapshot`` with others' new mark-downs, or (``mark_down``) the shared
        one with this process's; returns what was published."""
        with self._write_lock():
            current = self.read(changed_only=False)
            if current is None:
                merged = snapshot
            else:
                merged = merge(current, snapshot) if mark_down else merge(snapshot, current)
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".snapshot-")  # O_EXCL, mode 600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(encode(merged))
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        return merged

    @contextlib.contextmanager
    def _write_lock(self, wait: float = 0.05) -> Iterator[None]:
        """Writers one at a time; after ``wait``, anyway (one stopped mid-write must not stop all)."""
        with _opened(self._files["write"], os.O_RDWR | os.O_CREAT) as fd:
            deadline = time.monotonic() + wait
            try:
                while not _try_lock(fd) and time.monotonic() <= deadline:
                    time.sleep(0.001)
                yield
            finally:
                _close(fd)


def _try_lock(fd: int) -> bool:
    """Take the file's lock if no other open of it holds it; never waits."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def _opened(path: Path, flags: int) -> Iterator[int]:
    """A descriptor, recorded as it is opened (no fork sees it unrecorded); a link or anything but
    a regular file of ours is refused; closed on error."""
    with _fds_lock:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        _fds.add(fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise PermissionError(f"{path} is not a file of this user's")
        yield fd
    except BaseException:
        _close(fd)
        raise


def _close(fd: int) -> None:
    with _fds_lock:
        if fd in _fds:
            _fds.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)


def _forget_after_fork() -> None:
    """In a forked child: close our copies of the parent's descriptors (its flocks stay its own)."""
    for fd in _fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    _fds.clear()
    _fds_lock.release()


if fcntl is not None:
    os.register_at_fork(before=_fds_lock.acquire, after_in_parent=_fds_lock.release, after_in_child=_forget_after_fork)


def own_directory(directory: Path, create: bool = False) -> None:
    """Check that ``directory`` is this user's alone (mode 700); make it first with ``create``."""
    try:
        if create:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except FileNotFoundError:
        return  # (made when first used)
    except OSError as exc:
        raise SettingError(
            f"DBROUTING['RUNTIME_DIR'] {str(directory)!r} cannot be used ({exc})", "dbrouting.W005"
        ) from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise SettingError(
            f"DBROUTING['RUNTIME_DIR'] {str(directory)!r} must be a folder of this user's only (mode 700): "
            "another user could feed the router false health", "dbrouting.W005",
        )  # fmt: skip
