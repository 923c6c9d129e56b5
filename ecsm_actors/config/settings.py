"""The settings tree: one frozen dataclass per section, :class:`Config` at the root.

Owns every key, its type, its default and its ``#:`` comment (the comment is rendered into
``conf/ecsm-actors.toml``), plus the locations derived from the run directory. Runs in
every process. Sizes are :class:`ByteSize` (quantities such as ``512Mi`` accepted);
durations are seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "ECSM_ACTORS_"

_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_bytes(value: str | int) -> int:
    """Parse a byte size: an integer or a quantity such as ``512Mi``, ``1Gi``, ``10M``."""
    if isinstance(value, bool):
        raise ValueError("expected a size, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    text = str(value).strip()
    for table in (_BINARY, _DECIMAL):
        for suffix, factor in table.items():
            if text.endswith(suffix):
                number = text[: -len(suffix)]
                return _non_negative(float(number) * factor)
    return _non_negative(float(text))


def _non_negative(x: float) -> int:
    if x < 0 or x != x:
        raise ValueError("a size cannot be negative")
    return int(x)


class ByteSize(int):
    """Marker type: an ``int`` of bytes that accepts quantities in conf/env/flags."""


class StrList(tuple):  # type: ignore[type-arg]
    """Marker type: a tuple of strings; a TOML array in the conf file, comma-separated in
    the environment and in flags."""

    def __str__(self) -> str:
        return ",".join(self)



@dataclass(frozen=True, kw_only=True)
class RunSettings:
    #: Run directory; empty means ``$XDG_STATE_HOME/ecsm-actors`` (or ~/.local/state/...).
    dir: str = ""


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    #: DEBUG, INFO, WARNING or ERROR.
    level: str = "INFO"
    #: ``text`` for people, ``json`` for machines.
    format: str = "text"


@dataclass(frozen=True, kw_only=True)
class RegistrySettings:
    #: REQ/REP endpoint; empty means ``ipc://<run dir>/registry.sock``.
    endpoint: str = ""
    #: PUB endpoint for events; empty means ``ipc://<run dir>/events.sock``.
    events_endpoint: str = ""
    #: Local stream endpoint (``unix://PATH``: the same requests as on ``endpoint``, each
    #: preceded by its 4-byte length, over a plain AF_UNIX stream socket, which costs a
    #: round trip about half of ZeroMQ's): the processes of this computer send their
    #: requests there; empty means ``unix://<run dir>/registry.stream``; ``off``: not
    #: served (they use ``endpoint``). A setting of ``endpoint`` alone (this one empty)
    #: sends them to ``endpoint`` (ZeroMQ), the default stream being this run dir's.
    stream_endpoint: str = ""
    #: Local stream endpoint for events (``unix://PATH``: the same events and heartbeats
    #: as on ``events_endpoint``, each one length-prefixed frame, over a plain AF_UNIX
    #: stream socket, no ZeroMQ I/O thread woken on either side): the subscribers of this
    #: computer receive there; empty means ``unix://<run dir>/events.stream``; ``off``:
    #: not served (they use ``events_endpoint``).
    stream_events_endpoint: str = ""
    #: LMDB directory; empty means ``<run dir>/data``.
    data_dir: str = ""
    #: LMDB map size: the hard ceiling of the store.
    map_size: ByteSize = ByteSize(1 << 30)
    #: Refuse writes once the map is this full (fraction), keeping room for deletes.
    full_ratio: float = 0.95
    #: Events kept in the replay log before compaction.
    event_log_limit: int = 100_000
    #: Event records (``ecsm-cli get events``) are kept this long after they were last
    #: seen, seconds (a day: a whole day between two contacts fits).
    event_ttl: float = 86_400.0
    #: Event records kept at most (in a map of their own, never the objects'); beyond
    #: it, the least recently seen go first.
    event_limit: int = 10_000
    #: Period of the heartbeat on the PUB socket, seconds.
    heartbeat_interval: float = 1.0
    #: Largest request frame accepted, bytes.
    max_frame_bytes: ByteSize = ByteSize(4 << 20)
    #: Requests one turn of the registry's loop takes at most, in bytes (at least one
    #: request): what it decodes and holds before validating and committing them.
    max_batch_bytes: ByteSize = ByteSize(8 << 20)
    #: Bytes the registry queues at most for one peer that does not read (or send too
    #: fast): its replies, its requests and, for a subscriber, its events. Queues count
    #: messages, so this is divided by the largest message (max_frame_bytes; twice that
    #: for requests): 16 replies, 8 requests by default, never fewer than 4; events at
    #: least 1,000 (a few KiB each as a rule), at most pub_hwm.
    peer_queue_bytes: ByteSize = ByteSize(64 << 20)
    #: Client-side timeout of one attempt of a request, seconds (the most it waits for
    #: one reply; each attempt's timeout adapts to the measured round trip below it).
    request_timeout: float = 5.0
    #: Overall deadline of one request, retries included, seconds (``ecsm-cli
    #: --request-timeout``): a request is retried with the same request id within it.
    request_deadline: float = 10.0
    #: Remote REQ/REP endpoint, served only with CURVE (e.g. ``tcp://0.0.0.0:7700``);
    #: empty: none.
    remote_endpoint: str = ""
    #: Remote PUB endpoint for events, served only with CURVE (e.g.
    #: ``tcp://0.0.0.0:7701``); empty: none.
    remote_events_endpoint: str = ""
    #: Outcomes of writes kept by request id, answered again to a retry: at most this many…
    request_window: int = 100_000
    #: …and none older than this, seconds.
    request_window_age: float = 172_800.0
    #: Writes one BATCH request may carry at most.
    max_batch_writes: int = 1_000
    #: Most bytes of the store's write-ahead log (``<data dir>/wal``, allocated as the
    #: records need): each write transaction is made durable by one record there (one
    #: ``fdatasync``), LMDB's own file by a checkpoint when the log is full…
    wal_size: ByteSize = ByteSize(4 << 20)
    #: …and about every this many seconds while there are writes…
    checkpoint_interval: float = 1.0
    #: …and once the writes since the last one dirtied about this many LMDB pages (4 KiB;
    #: 0: never). A checkpoint's snapshot keeps LMDB from reusing the pages freed after
    #: it, so data.mdb grows by the pages dirtied between two checkpoints: at 500 writes/s
    #: about 30 MiB of free pages, 15 with 2048 here, for a watcher p99 about 1.4× as long.
    checkpoint_pages: int = 0
    #: Seconds the store's writes may gather in one LMDB transaction before it commits to
    #: data.mdb (unsynced: each write is durable by its log record before it is
    #: acknowledged), as etcd batches its backend's commits; 0: a commit every turn.
    commit_interval: float = 0.025
    #: Seconds a turn's writes may wait for more before they commit when more local
    #: connections wrote in the last millisecond than this turn holds (those writers are
    #: about to write again: one commit and one sync then serve them all), as
    #: PostgreSQL's commit_delay; a lone writer and reads never wait; 0: never; at most
    #: 0.01.
    commit_delay: float = 0.0001
    #: Messages a subscriber buffers before ZeroMQ drops some, and the most the registry
    #: queues per subscriber (see peer_queue_bytes); gaps are repaired by replay.
    pub_hwm: int = 100_000


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    #: Where the registry keeps objects: ``lmdb`` (embedded, one computer; the data dir
    #: of [registry]) or ``etcd`` (an etcd v3 cluster, for several computers).
    backend: str = "lmdb"
    #: etcd client URLs (http:// or https://), tried in order; with backend = "etcd".
    etcd_endpoints: StrList = StrList()
    #: Key prefix of this operator's objects in etcd (one operator per prefix).
    etcd_prefix: str = "/ecsm-actors/"
    #: CA bundle that signs the etcd servers' certificates (https endpoints).
    etcd_ca_file: str = ""
    #: Client certificate and key for etcd's client-cert auth (both or neither).
    etcd_cert_file: str = ""
    etcd_key_file: str = ""
    #: Seconds to connect to one etcd endpoint before trying the next.
    etcd_dial_timeout: float = 2.0
    #: Seconds one etcd request may take before it counts as failed.
    etcd_request_timeout: float = 5.0


@dataclass(frozen=True, kw_only=True)
class EcsmSettings:
    #: ``http`` or ``https``.
    protocol: str = "http"
    #: ECSM host. With ``--simulate`` the supervisor points every child at its simulator.
    host: str = "127.0.0.1"
    #: ECSM port (the platform default is 3001).
    port: int = 3001
    #: TCP connect timeout, seconds.
    connect_timeout: float = 3.0
    #: Read timeout of one call, seconds.
    read_timeout: float = 10.0


@dataclass(frozen=True, kw_only=True)
class ControllerSettings:
    #: Reconcile workers per controller process.
    workers: int = 2
    #: Period of the informer's version-only resync, seconds.
    resync_period: float = 300.0
    #: First retry delay of a failing key, seconds (doubles per failure, with jitter).
    backoff_base: float = 0.05
    #: Longest retry delay of a failing key, seconds.
    backoff_cap: float = 30.0
    #: Jitter of a retry delay, as a fraction: each delay is scaled by 1 ± jitter.
    backoff_jitter: float = 0.1
    #: Retries per second shared by all keys of a controller (client-go's default bucket):
    #: a retry waits the larger of its key's backoff and its turn in this budget; 0 = off.
    retry_qps: float = 10.0
    #: Retries the shared budget lets through at once before ``retry_qps`` applies.
    retry_burst: int = 100
    #: Longest wait between two attempts to reach a registry that is down, seconds.
    watch_retry_cap: float = 2.0
    #: Events the informer's subscriber buffers before ZeroMQ drops some (a loss is
    #: detected and replayed); 0 means ``registry.pub_hwm``.
    event_buffer: int = 0
    #: Consecutive failures after which the object's status gets a condition saying why.
    failure_threshold: int = 5
    #: Period of liveness reports to the supervisor, seconds.
    heartbeat_interval: float = 1.0
    #: No event and no registry heartbeat for this long → reconnect and replay, seconds.
    watch_deadline: float = 5.0
    #: On shutdown, in-flight reconciles get this long to finish, seconds.
    drain_grace: float = 5.0
    #: Leader election (etcd store only; with LMDB the single instance always leads):
    #: how long a lease lasts without renewal, the time within which a leader must renew
    #: or stop reconciling, and how often candidates and the leader retry.
    lease_duration: float = 4.0
    renew_deadline: float = 3.0
    retry_period: float = 1.0


@dataclass(frozen=True, kw_only=True)
class ServiceControllerSettings:
    #: Every ECSMService is re-checked against ECSM this often (ECSM has no watch), seconds.
    drift_interval: float = 10.0
    #: Consecutive ECSM failures before the condition Degraded/EcsmUnavailable is set.
    unavailable_threshold: int = 3
    #: While a rollout, a repair or a dependency wait is in progress, re-check this often, s.
    poll_interval: float = 1.0
    #: Node states (up/down) are re-read from ECSM at most this often, seconds.
    node_refresh_interval: float = 5.0


@dataclass(frozen=True, kw_only=True)
class HpaSettings:
    #: How often each HPA reads metrics and decides, seconds.
    sync_period: float = 15.0
    #: Default tolerance around the target ratio (per-object ``tolerance`` overrides it).
    tolerance: float = 0.1
    #: Default scale-down stabilization window, seconds.
    downscale_stabilization: float = 300.0
    #: Metrics older than this are treated as missing, seconds.
    metric_max_age: float = 60.0
    #: For this long after an instance's first start, its CPU sample counts only once it
    #: covers ``initial_readiness_delay`` after its latest start (Kubernetes'
    #: ``cpu-initialization-period``), seconds.
    cpu_initialization_period: float = 300.0
    #: After a start, CPU samples this young are start-up noise and set aside within the
    #: initialization period (Kubernetes' ``initial-readiness-delay``), seconds.
    initial_readiness_delay: float = 30.0


@dataclass(frozen=True, kw_only=True)
class SupervisorSettings:
    #: Control socket (REQ/REP); empty means ``ipc://<run dir>/control.sock``.
    control_endpoint: str = ""
    #: Where children PUSH liveness reports; empty means ``ipc://<run dir>/heartbeat.sock``.
    heartbeat_endpoint: str = ""
    #: A child counts as started after staying up this long, seconds.
    startsecs: float = 1.0
    #: First restart delay, seconds (doubles per quick failure, with jitter).
    backoff_base: float = 0.2
    #: Longest restart delay, seconds.
    backoff_cap: float = 30.0
    #: This many restarts within ``flap_window`` seconds put the child in HOLD-DOWN.
    flap_restarts: int = 5
    #: Window of the flapping detector, seconds.
    flap_window: float = 60.0
    #: Time spent in HOLD-DOWN before trying again, seconds.
    hold_down: float = 30.0
    #: Give up after this many hold-downs in a row (0 = never give up).
    max_hold_downs: int = 0
    #: A child whose last heartbeat is older than this is killed and restarted, seconds.
    heartbeat_deadline: float = 10.0
    #: A reconcile in flight longer than this marks the child stuck, seconds.
    reconcile_deadline: float = 120.0
    #: A child whose RSS (less file-backed pages, e.g. the LMDB map) is above this is restarted.
    memory_limit: ByteSize = ByteSize(256 << 20)
    #: TERM, then KILL after this long, seconds.
    stop_grace: float = 5.0
    #: A child not ready this long after its start is killed and restarted, seconds.
    ready_timeout: float = 60.0
    #: How often each child's RSS is compared with ``memory_limit``, seconds.
    memory_interval: float = 5.0
    #: A child's log (``<run dir>/logs/<child>.log``) larger than this is rotated to
    #: ``.1``: at the child's start, and while it runs at each memory sample (copy and
    #: truncate; with ``memory_interval`` 0, only at starts).
    log_max_bytes: ByteSize = ByteSize(16 << 20)
    #: Child table (TOML or JSON) replacing the built-in one; empty means the built-in one.
    children_file: str = ""
    #: Fork the built-in children from a warm zygote (a supervised child that imported
    #: their code once) instead of starting each as a fresh interpreter; false = always
    #: fresh interpreters (also the fallback while the zygote is down).
    zygote: bool = True
    #: ``HOST:PORT`` where the supervisor serves ``/metrics`` (Prometheus text format) to
    #: a scraper; empty = off. Only a loopback host is accepted (``127.0.0.1:9464``) unless
    #: ``metrics_allow_remote`` is true: the figures name the device's processes.
    metrics_endpoint: str = ""
    #: Accept a non-loopback ``metrics_endpoint`` (e.g. ``0.0.0.0:9464``).
    metrics_allow_remote: bool = False


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    #: Largest replica count a service may ask for; also bounds an HPA's min/maxReplicas
    #: and an integer rollout maxSurge/maxUnavailable. Lowering it below a stored object's
    #: value makes every update of that object fail until its value is lowered too.
    max_replicas: int = 1000
    #: Most nodes in a service's ``nodes`` (Static) or ``nodePool`` (Dynamic).
    max_nodes: int = 1000
    #: Largest memory limit of a service (``resources.limits.memory``, SylixOS
    #: ``kheapLimit``).
    max_memory: ByteSize = ByteSize(1 << 40)
    #: Largest disk limit of a service (``resources.limits.disk``).
    max_disk: ByteSize = ByteSize(64 << 40)


@dataclass(frozen=True, kw_only=True)
class SimulatorSettings:
    #: HTTP port on 127.0.0.1; 0 picks a free port (recorded in the run dir).
    port: int = 0
    #: Number of seeded nodes.
    nodes: int = 3
    #: Seconds a container stays ``created`` before it is ``running``.
    start_delay: float = 0.5
    #: Persist state to this JSON file (survives a restart); empty means in memory.
    state_file: str = ""
    #: Memory the containers of each seeded node may reserve (the OS's share is outside
    #: it); a container reserves its service's ``memoryLimitMB`` and is refused when the
    #: node has no room left. Per node at run time through the admin API.
    node_memory: ByteSize = ByteSize(4 << 30)
    #: Memory limit (and so reservation) of a container whose service config and image
    #: config set no ``memoryLimitMB``.
    default_memory_limit: ByteSize = ByteSize(512 << 20)


@dataclass(frozen=True, kw_only=True)
class LinkSettings:
    """The ground-side link agent of ``ecsm-cli`` (one per context)."""

    #: The agent exits after this many seconds without a request or a watcher.
    idle_timeout: float = 900.0
    #: ZeroMQ heartbeat (ZMTP PING) period on remote connections, seconds: a silent
    #: connection is dropped and re-established after ``heartbeat_timeout``.
    heartbeat_interval: float = 2.0
    #: A remote connection that answered nothing for this long is dropped, seconds.
    heartbeat_timeout: float = 8.0


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration. Build it with :func:`load_config`."""

    run: RunSettings = field(default_factory=RunSettings)
    log: LogSettings = field(default_factory=LogSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    ecsm: EcsmSettings = field(default_factory=EcsmSettings)
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    service: ServiceControllerSettings = field(default_factory=ServiceControllerSettings)
    hpa: HpaSettings = field(default_factory=HpaSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    link: LinkSettings = field(default_factory=LinkSettings)

    # -- derived locations: everything defaults into the run directory --------------

    @property
    def run_dir(self) -> Path:
        if self.run.dir:
            return Path(self.run.dir).expanduser()
        state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(state) / "ecsm-actors"

    def _ipc(self, configured: str, name: str) -> str:
        return configured or f"ipc://{self.run_dir / name}"

    def _stream(self, configured: str, name: str) -> str:
        """A stream endpoint as configured, ``unix://<run dir>/name`` when empty, "" when
        ``off`` (not served)."""
        if configured.strip().lower() == "off":
            return ""
        return configured or f"unix://{self.run_dir / name}"

    @property
    def registry_endpoint(self) -> str:
        return self._ipc(self.registry.endpoint, "registry.sock")

    @property
    def registry_stream_endpoint(self) -> str:
        """The registry's local stream endpoint, or "" when it is not served (``off``)."""
        return self._stream(self.registry.stream_endpoint, "registry.stream")

    @property
    def registry_local_endpoint(self) -> str:
        """The endpoint the processes of this computer send their requests to: the
        stream endpoint when it is served, else ``registry_endpoint``. A process given
        ``registry.endpoint`` and no ``registry.stream_endpoint`` (pointed at another
        instance's registry, or a remote one) talks to ``registry.endpoint``: the default
        stream is its own run dir's."""
        if self.registry.endpoint and not self.registry.stream_endpoint:
            return self.registry_endpoint
        return self.registry_stream_endpoint or self.registry_endpoint

    @property
    def events_endpoint(self) -> str:
        return self._ipc(self.registry.events_endpoint, "events.sock")

    @property
    def registry_stream_events_endpoint(self) -> str:
        """The registry's local event stream endpoint, or "" when it is not served."""
        return self._stream(self.registry.stream_events_endpoint, "events.stream")

    @property
    def events_local_endpoint(self) -> str:
        """The endpoint the subscribers of this computer receive events from: the event
        stream when it is served, else ``events_endpoint`` (also when
        ``registry.events_endpoint`` is given and no ``registry.stream_events_endpoint``:
        the default stream is this run dir's)."""
        if self.registry.events_endpoint and not self.registry.stream_events_endpoint:
            return self.events_endpoint
        return self.registry_stream_events_endpoint or self.events_endpoint

    @property
    def data_dir(self) -> Path:
        return Path(self.registry.data_dir) if self.registry.data_dir else self.run_dir / "data"

    @property
    def control_endpoint(self) -> str:
        return self._ipc(self.supervisor.control_endpoint, "control.sock")

    @property
    def heartbeat_endpoint(self) -> str:
        return self._ipc(self.supervisor.heartbeat_endpoint, "heartbeat.sock")

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def ecsm_address_file(self) -> Path:
        """Where a simulator started in this run dir records its address (JSON)."""
        return self.run_dir / "ecsm-simulator.json"

    @property
    def ecsm_url(self) -> str:
        return f"{self.ecsm.protocol}://{self.ecsm.host}:{self.ecsm.port}"

    def ensure_run_dir(self) -> Path:
        """Create the run directory (mode 0700) and its subfolders; return it."""
        for path in (self.run_dir, self.log_dir, self.pid_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o700)
        return self.run_dir
