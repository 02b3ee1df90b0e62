#!/usr/bin/env python3
"""A local PostgreSQL 15 primary and streaming replicas for development and tests.

    python scripts/pgcluster.py up        create what is missing, start what is stopped
    python scripts/pgcluster.py status    nodes, roles, replication state, log files
    python scripts/pgcluster.py down      stop every node (fast shutdown)
    python scripts/pgcluster.py destroy   stop every node and delete the data folder
    python scripts/pgcluster.py stop replica1 [--mode immediate]
    python scripts/pgcluster.py start replica1

Everything lives under ``.pgdata/`` in the project (git ignores it). Servers listen on
127.0.0.1 only, on ``PGCLUSTER_PORT_BASE`` (primary, default 25432) and the next ports
(replica1, replica2, ...). The defaults stay below Linux's ephemeral range (32768-60999): a port
in it may be the local end of any client connection on the machine, a kept database connection
for hours, and a server could not start there. ``PGCLUSTER_REPLICAS`` sets how many replicas (default 2).
When run as root, the servers run as the ``postgres`` user, since PostgreSQL refuses root.
``PGCLUSTER_PGBOUNCER=1`` also puts a PgBouncer in transaction pooling in front of each node, on
the node's port + ``PGBOUNCER_PORT_OFFSET`` (``pgbouncer`` must be installed: ``make test`` does).

Standard library only, so it runs before the project's virtual environment exists.
Tests import it to stop, kill and restart nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_DIR / ".pgdata"
PORT_WAIT_SECONDS = 10.0  # how long start waits for a port another process holds
PGBOUNCER_PORT_OFFSET = 50  # config/settings/local.py uses the same offset

# Development credentials for a loopback-only cluster; production gets its own from the
# environment (see README). They are never printed by this tool.
APP_USER = "gists"
APP_PASSWORD = "gists-dev-password"  # noqa: S105 (local development cluster only)
APP_DATABASE = "gists"
REPLICATION_USER = "replicator"
REPLICATION_PASSWORD = "replicator-dev-password"  # noqa: S105

# Settings chosen for a dev cluster whose replication lag we want to observe precisely.
SERVER_CONF = """
listen_addresses = '127.0.0.1'
max_connections = 200
shared_buffers = 128MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
# Report replay progress every second so the primary's view of lag stays current.
wal_receiver_status_interval = 1s
# Replicas reconnect to a restarted primary within a second (default 5 s).
wal_retrieve_retry_interval = 1s
# Avoid query cancellations on the replicas from vacuum on the primary.
hot_standby_feedback = on
# A replica whose replay is paused must not cancel its own readers after 30 s.
max_standby_streaming_delay = -1
# Dev cluster only: skip fsync for speed. A killed server still recovers from WAL;
# only an operating-system crash could lose data, which is acceptable here.
fsync = off
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
include_if_exists = 'node.conf'
"""

EXTENSIONS_SQL = "CREATE EXTENSION IF NOT EXISTS cube; CREATE EXTENSION IF NOT EXISTS earthdistance;"

HBA_CONF = f"""
# TYPE  DATABASE     USER            ADDRESS        METHOD
local   all          postgres                       peer map=owner
host    replication  {REPLICATION_USER}      127.0.0.1/32   scram-sha-256
host    all          all             127.0.0.1/32   scram-sha-256
"""


class ClusterError(Exception):
    """A node could not be created, started or stopped; the message says why and where."""


def bin_dir() -> Path:
    """Directory of the PostgreSQL server binaries (``PG_BINDIR`` overrides)."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    except (OSError, subprocess.CalledProcessError):
        pass
    for version in ("15", "16", "17"):
        candidate = Path(f"/usr/lib/postgresql/{version}/bin")
        if (candidate / "initdb").exists():
            return candidate
    raise ClusterError("PostgreSQL server binaries not found: install PostgreSQL 15 or set PG_BINDIR")


# PgBouncer as the README advises it in front of a node: transaction pooling, a server found
# down retried after a second (not 15), a client never queued longer than a probe would wait.
PGBOUNCER_INI = """
[databases]
* = host=127.0.0.1 port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {userlist}
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
server_login_retry = 1
server_connect_timeout = 2
query_wait_timeout = 5
logfile = {log}
pidfile = {pidfile}
"""


@dataclass
class Node:
    name: str
    port: int
    data_dir: Path
    log_file: Path
    is_primary: bool = False

    @property
    def bouncer_port(self) -> int:
        return self.port + PGBOUNCER_PORT_OFFSET


@dataclass
class Cluster:
    base_dir: Path = DEFAULT_DATA_DIR
    port_base: int = 25432
    replica_count: int = 2
    pgbouncer: bool = False
    nodes: list[Node] = field(init=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)
        names = ["primary"] + [f"replica{i}" for i in range(1, self.replica_count + 1)]
        self.nodes = [
            Node(
                name=name,
                port=self.port_base + i,
                data_dir=self.base_dir / name,
                log_file=self.base_dir / "logs" / f"{name}.log",
                is_primary=(i == 0),
            )
            for i, name in enumerate(names)
        ]

    @classmethod
    def from_env(cls) -> Cluster:
        return cls(
            base_dir=Path(os.environ.get("PGCLUSTER_DIR", DEFAULT_DATA_DIR)).resolve(),
            port_base=int(os.environ.get("PGCLUSTER_PORT_BASE", "25432")),
            replica_count=int(os.environ.get("PGCLUSTER_REPLICAS", "2")),
            pgbouncer=os.environ.get("PGCLUSTER_PGBOUNCER", "") == "1",
        )

    # -- helpers ---------------------------------------------------------------------

    @property
    def primary(self) -> Node:
        return self.nodes[0]

    @property
    def replicas(self) -> list[Node]:
        return self.nodes[1:]

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "run"

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise ClusterError(f"unknown node {name!r} (known: {known})")

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _run(self, argv: list[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full = self._as_server_user(argv)
        # Run from a directory the server user can read, whatever the caller's cwd.
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, cwd="/")
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            tail = detail[-1] if detail else f"exit code {proc.returncode}"
            raise ClusterError(f"{Path(argv[0]).name} failed: {tail}")
        return proc

    def _prepare_dirs(self) -> None:
        if os.geteuid() == 0:
            # The servers run as postgres, which must be able to pass through every folder above
            # the data folder (a checkout in a mode-700 folder from mktemp, say): grant it
            # traversal only (o+x), never listing or reading.
            for parent in reversed(self.base_dir.parents):
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    os.chmod(parent, mode | stat.S_IXOTH)
                    self._say(True, f"allowed traversal (o+x) of {parent} for the postgres user")
        for path in (self.base_dir, self.base_dir / "logs", self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                pw = pwd.getpwnam("postgres")
                os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(self.socket_dir, 0o700)

    def psql(self, node: Node, sql: str, *, database: str = "postgres", timeout: float = 30) -> str:
        """Run SQL as the superuser over the node's Unix socket; returns unaligned output."""
        proc = self._run(
            [
                str(bin_dir() / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(node.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            timeout=timeout,
        )
        return proc.stdout.strip()

    def _write_node_conf(self, node: Node) -> None:
        text = f"port = {node.port}\nunix_socket_directories = '{self.socket_dir}'\ncluster_name = '{_title(node)}'\n"
        path = node.data_dir / "node.conf"
        self._run(["sh", "-c", f"cat > '{path}' <<'EOF'\n{text}EOF\n"])

    # -- state -----------------------------------------------------------------------

    def exists(self, node: Node) -> bool:
        return (node.data_dir / "PG_VERSION").exists()

    def pid(self, node: Node) -> int | None:
        """PID of the node's postmaster when it is running, else None."""
        pid_file = node.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _is_postmaster(pid, node.data_dir) else None

    def is_running(self, node: Node) -> bool:
        return self.pid(node) is not None

    # -- lifecycle -------------------------------------------------------------------

    def up(self, log: bool = True) -> None:
        """Create missing nodes and start stopped ones. Safe to run any number of times."""
        self._prepare_dirs()
        primary = self.primary
        if not self.exists(primary):
            self._say(log, f"creating primary in {primary.data_dir}")
            self._init_primary(primary)
        self.start(primary.name, log=log)
        self._ensure_roles(primary)
        for node in self.replicas:
            if not self.exists(node):
                self._say(log, f"creating {node.name} with pg_basebackup -R")
                self._create_replica(node)
            self.start(node.name, log=log)
        if self.pgbouncer:
            for node in self.nodes:
                self._bouncer_up(node, log)
        self._say(log, f"cluster up; logs in {self.base_dir / 'logs'}")

    def _bouncer_pidfile(self, node: Node) -> Path:
        return self.socket_dir / f"pgbouncer-{node.name}.pid"

    def bouncer_pid(self, node: Node) -> int | None:
        try:
            pid = int(self._bouncer_pidfile(node).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _cmdline(pid).split(b"\0")[0].endswith(b"pgbouncer") else None

    def _bouncer_up(self, node: Node, log: bool) -> None:
        """Start the node's PgBouncer (transaction pooling) unless it runs."""
        if self.bouncer_pid(node) is not None:
            return
        executable = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(executable).exists():
            raise ClusterError("PGCLUSTER_PGBOUNCER=1 needs pgbouncer (scripts/system-packages.sh pgbouncer:pgbouncer)")
        userlist, ini = self.socket_dir / "pgbouncer-users.txt", self.socket_dir / f"pgbouncer-{node.name}.ini"
        text = PGBOUNCER_INI.format(
            server_port=node.port, port=node.bouncer_port, userlist=userlist, pidfile=self._bouncer_pidfile(node),
            log=self.base_dir / "logs" / f"pgbouncer-{node.name}.log",
        )  # fmt: skip
        users = f'"{APP_USER}" "{APP_PASSWORD}"\n'
        script = f"umask 077; cat > '{ini}' <<'EOF'\n{text}EOF\ncat > '{userlist}' <<'EOF'\n{users}EOF\n"
        self._run(["sh", "-c", script])
        self._run([executable, "-d", "-q", str(ini)])
        deadline = time.monotonic() + PORT_WAIT_SECONDS
        while not _port_in_use(node.bouncer_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._say(log, f"pgbouncer for {node.name} on 127.0.0.1:{node.bouncer_port} (transaction pooling)")

    def _bouncers_down(self) -> None:
        for node in self.nodes:
            pid = self.bouncer_pid(node)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)  # pgbouncer's immediate shutdown
                deadline = time.monotonic() + 10
                while self.bouncer_pid(node) is not None and time.monotonic() < deadline:
                    time.sleep(0.05)

    def start(self, name: str, log: bool = False) -> None:
        node = self.node(name)
        if not self.exists(node):
            raise ClusterError(f"{name} does not exist yet: run `pgcluster.py up`")
        if self.is_running(node):
            self._say(log, f"{name} already running on 127.0.0.1:{node.port}")
            return
        self._clear_stale_pid(node)
        self._write_node_conf(node)  # also gives clusters made before a change the current names
        if not node.is_primary:
            self._follow_primary_port(node)
        # A port just closed may linger a moment (a server stopping, a connection closing).
        deadline = time.monotonic() + PORT_WAIT_SECONDS
        while _port_in_use(node.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _port_in_use(node.port):
            hint = "another cluster? set PGCLUSTER_PORT_BASE"
            low, high = _ephemeral_ports()
            if low <= node.port <= high:
                hint = (
                    f"it lies in the kernel's ephemeral range {low}-{high}, where client connections "
                    f"take their local ports: choose a port base (PGCLUSTER_PORT_BASE; "
                    f"PGCLUSTER_TEST_PORT_BASE for the tests, --port-base for bench/) that keeps "
                    f"all {len(self.nodes)} ports below {low}"
                )
            raise ClusterError(f"{name} cannot start: 127.0.0.1:{node.port} is in use by another process ({hint})")
        proc = self._run(
            [str(bin_dir() / "pg_ctl"), "-D", str(node.data_dir), "-l", str(node.log_file), "-w", "-t", "90", "start"],
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterError(f"{name} did not start; see {node.log_file}")
        self._say(log, f"{name} started on 127.0.0.1:{node.port} (log: {node.log_file})")

    def stop(self, name: str, mode: str = "fast", log: bool = False) -> None:
        node = self.node(name)
        if not self.is_running(node):
            self._say(log, f"{name} already stopped")
            return
        self._run([str(bin_dir() / "pg_ctl"), "-D", str(node.data_dir), "-m", mode, "-w", "-t", "90", "stop"])
        self._say(log, f"{name} stopped ({mode})")

    def signal(self, name: str, sig: signal.Signals) -> None:
        """Send a signal to a node's postmaster (SIGKILL, SIGSTOP, SIGCONT) for fault tests."""
        node = self.node(name)
        pid = self.pid(node)
        if pid is None:
            raise ClusterError(f"{name} is not running")
        if sig in (signal.SIGSTOP, signal.SIGCONT, signal.SIGKILL):
            # The whole process group: postmaster and its backends, as a hung or lost host.
            for child in [pid, *_children(pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, sig)
        else:
            os.kill(pid, sig)
        if sig == signal.SIGKILL:
            deadline = time.monotonic() + 10
            while self.is_running(node) and time.monotonic() < deadline:
                time.sleep(0.01)

    def promote(self, name: str) -> None:
        """Turn a replica into a primary of its own (pg_ctl promote), as a failover would."""
        node = self.node(name)
        self._run([str(bin_dir() / "pg_ctl"), "-D", str(node.data_dir), "-w", "-t", "90", "promote"])

    def rebuild(self, name: str, log: bool = False) -> None:
        """Replace a replica by a fresh pg_basebackup of the primary, and start it."""
        node = self.node(name)
        if node.is_primary:
            raise ClusterError("only a replica can be rebuilt")
        if self.is_running(node):
            self.stop(name, mode="immediate")
        self._say(log, f"rebuilding {name} with pg_basebackup -R")
        self._create_replica(node)
        self.start(name, log=log)

    def down(self, log: bool = True) -> None:
        self._bouncers_down()
        for node in reversed(self.nodes):
            if self.exists(node):
                self.stop(node.name, log=log)

    def destroy(self, log: bool = True) -> None:
        self._bouncers_down()
        for node in reversed(self.nodes):
            if self.exists(node) and self.is_running(node):
                self.stop(node.name, mode="immediate", log=log)
        if self.base_dir.exists():
            shutil.rmtree(self.base_dir)
        self._say(log, f"removed {self.base_dir}")

    # -- creation --------------------------------------------------------------------

    def _init_primary(self, node: Node) -> None:
        pwfile = self.base_dir / "run" / "initdb.pw"
        self._run(["sh", "-c", f"umask 077; printf '%s' 'unused-{os.getpid()}' > '{pwfile}'"])
        try:
            self._run(
                [
                    str(bin_dir() / "initdb"),
                    "-D",
                    str(node.data_dir),
                    "-U",
                    "postgres",
                    "--pwfile",
                    str(pwfile),
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                ]
            )
        finally:
            self._run(["rm", "-f", str(pwfile)], check=False)
        conf = node.data_dir / "postgresql.conf"
        hba = node.data_dir / "pg_hba.conf"
        ident = node.data_dir / "pg_ident.conf"
        server_user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._run(["sh", "-c", f"cat >> '{conf}' <<'EOF'\n{SERVER_CONF}EOF\n"])
        self._run(["sh", "-c", f"cat > '{hba}' <<'EOF'\n{HBA_CONF}EOF\n"])
        self._run(["sh", "-c", f"echo 'owner {server_user} postgres' >> '{ident}'"])
        self._write_node_conf(node)

    def _ensure_roles(self, node: Node) -> None:
        sql = f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{REPLICATION_USER}') THEN
            CREATE ROLE {REPLICATION_USER} WITH REPLICATION LOGIN PASSWORD '{REPLICATION_PASSWORD}';
          END IF;
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_USER}') THEN
            CREATE ROLE {APP_USER} WITH LOGIN CREATEDB PASSWORD '{APP_PASSWORD}';
          END IF;
        END $$;
        -- The router reads pg_stat_replication and pg_stat_wal_receiver to measure lag: it needs
        -- pg_read_all_stats, no more (the least the app's role on RDS gets: manage.py create_app_role).
        -- A cluster made before this change had pg_monitor: taken back.
        GRANT pg_read_all_stats TO {APP_USER};
        REVOKE pg_monitor FROM {APP_USER};
        """
        self.psql(node, sql)
        # earthdistance is not a trusted extension: the superuser creates it in template1, so
        # the app's database and every test database inherit it (on RDS, rds_superuser does).
        self.psql(node, EXTENSIONS_SQL, database="template1")
        if self.psql(node, f"SELECT 1 FROM pg_database WHERE datname = '{APP_DATABASE}'") != "1":
            self.psql(node, f"CREATE DATABASE {APP_DATABASE} OWNER {APP_USER}")
        self.psql(node, EXTENSIONS_SQL, database=APP_DATABASE)

    def _create_replica(self, node: Node) -> None:
        primary = self.primary
        slot = node.name
        # A slot left by an earlier, interrupted creation would make -C fail.
        self.psql(
            primary,
            f"SELECT pg_drop_replication_slot('{slot}') FROM pg_replication_slots "
            f"WHERE slot_name = '{slot}' AND NOT active",
        )
        if node.data_dir.exists():
            self._run(["rm", "-rf", str(node.data_dir)])
        conninfo = (
            f"host=127.0.0.1 port={primary.port} user={REPLICATION_USER} "
            f"password={REPLICATION_PASSWORD} application_name={node.name}"
        )
        self._run(
            [
                str(bin_dir() / "pg_basebackup"),
                "-D",
                str(node.data_dir),
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                slot,
                "-c",
                "fast",
                "-d",
                conninfo,
            ],
            timeout=600,
        )
        self._write_node_conf(node)

    def _follow_primary_port(self, node: Node) -> None:
        """Point a replica's primary_conninfo (written by pg_basebackup -R) at the primary's port
        of today: a cluster made under another PGCLUSTER_PORT_BASE keeps replicating."""
        auto_conf = node.data_dir / "postgresql.auto.conf"
        self._run(["sed", "-i", "-E", rf"/^primary_conninfo/ s/port=[0-9]+/port={self.primary.port}/", str(auto_conf)])

    def _clear_stale_pid(self, node: Node) -> None:
        """After a crash or kill -9 the lock files may name a dead, dying or unrelated process."""
        pid_file = node.data_dir / "postmaster.pid"
        socket_lock = self.socket_dir / f".s.PGSQL.{node.port}.lock"
        if not pid_file.exists() or self.pid(node) is not None:
            return
        try:
            old_pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            old_pid = 0
        # A killed postmaster stays a zombie until reaped, and its backends need a moment to
        # notice and release the shared memory; PostgreSQL refuses to start while either lives.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            dying = old_pid and Path(f"/proc/{old_pid}").exists() and not _cmdline(old_pid)
            if not dying and not _has_backends(_title(node)):
                break
            time.sleep(0.05)
        # The pid may since belong to an unrelated process: the lock files are stale either way.
        self._run(["rm", "-f", str(pid_file), str(socket_lock)])

    # -- reporting -------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        nodes = []
        for node in self.nodes:
            entry: dict[str, object] = {
                "name": node.name,
                "port": node.port,
                "exists": self.exists(node),
                "running": self.is_running(node),
                "log": str(node.log_file),
            }
            if entry["running"]:
                try:
                    entry["in_recovery"] = self.psql(node, "SELECT pg_is_in_recovery()", timeout=5) == "t"
                except (ClusterError, subprocess.TimeoutExpired) as exc:
                    entry["error"] = str(exc)
            nodes.append(entry)
        replication: list[dict[str, str]] = []
        if self.is_running(self.primary):
            try:
                rows = self.psql(
                    self.primary,
                    "SELECT application_name, state, sync_state, "
                    "coalesce(replay_lag::text, '') FROM pg_stat_replication "
                    "ORDER BY application_name",
                    timeout=5,
                )
                for line in filter(None, rows.splitlines()):
                    app, state, sync, lag = line.split("|")
                    replication.append({"application_name": app, "state": state, "sync_state": sync, "replay_lag": lag})
            except (ClusterError, subprocess.TimeoutExpired) as exc:
                replication.append({"error": str(exc)})
        return {"data_dir": str(self.base_dir), "nodes": nodes, "replication": replication}

    @staticmethod
    def _say(enabled: bool, message: str) -> None:
        if enabled:
            print(f"pgcluster: {message}", flush=True)


def _is_postmaster(pid: int, data_dir: Path) -> bool:
    cmdline = _cmdline(pid).split(b"\0")
    if not cmdline or not cmdline[0].endswith((b"postgres", b"postmaster")):
        return False
    return str(data_dir).encode() in cmdline


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _ephemeral_ports() -> tuple[int, int]:
    """The local port range the kernel gives outgoing connections (Linux's default otherwise)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _title(node: Node) -> str:
    """The node's cluster_name: unique on the machine, so its processes are told from others'."""
    return f"{node.name}-{node.port}"


def _has_backends(title: str) -> bool:
    """Backends carry the node's cluster_name in their title ("postgres: replica1-25433: ...")."""
    marker = f"postgres: {title}: ".encode()
    return any(_cmdline(int(e.name)).startswith(marker) for e in Path("/proc").iterdir() if e.name.isdigit())


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgcluster", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="create missing nodes and start all (idempotent)")
    sub.add_parser("down", help="stop all nodes")
    status = sub.add_parser("status", help="show nodes and replication")
    status.add_argument("--json", action="store_true")
    sub.add_parser("destroy", help="stop all nodes and delete the data folder")
    start = sub.add_parser("start", help="start one node")
    start.add_argument("node")
    stop = sub.add_parser("stop", help="stop one node")
    stop.add_argument("node")
    stop.add_argument("--mode", choices=["smart", "fast", "immediate"], default="fast")
    args = parser.parse_args(argv)

    cluster = Cluster.from_env()
    try:
        if args.command == "up":
            cluster.up()
        elif args.command == "down":
            cluster.down()
        elif args.command == "destroy":
            cluster.destroy()
        elif args.command == "start":
            cluster.start(args.node, log=True)
        elif args.command == "stop":
            cluster.stop(args.node, mode=args.mode, log=True)
        elif args.command == "status":
            report = cluster.status()
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                _print_status(report)
            running = all(n["running"] for n in report["nodes"])  # type: ignore[index,union-attr]
            return 0 if running else 1
    except ClusterError as exc:
        print(f"pgcluster: error: {exc}", file=sys.stderr)
        return 2
    except subprocess.TimeoutExpired as exc:
        print(f"pgcluster: error: timed out running {Path(str(exc.cmd[0])).name}", file=sys.stderr)
        return 2
    return 0


def _print_status(report: dict[str, object]) -> None:
    print(f"data folder: {report['data_dir']}")
    print(f"{'node':<10} {'address':<16} {'state':<9} {'role':<8} log")
    for n in report["nodes"]:  # type: ignore[attr-defined]
        state = "running" if n["running"] else ("stopped" if n["exists"] else "absent")
        role = {True: "replica", False: "primary"}.get(n.get("in_recovery"), "-")  # type: ignore[call-overload]
        print(f"{n['name']:<10} 127.0.0.1:{n['port']:<6} {state:<9} {role:<8} {n['log']}")
    rows = report["replication"]
    print(f"primary's pg_stat_replication: {len(rows)} standby(s)")  # type: ignore[arg-type]
    for r in rows:  # type: ignore[attr-defined]
        print("  " + ", ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    sys.exit(main())
