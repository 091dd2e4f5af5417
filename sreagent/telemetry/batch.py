"""The batch contract ``sreagent.batch/v1``: what a collector sends and the controller keeps.

A batch is self-contained: everything needed to interpret it travels in it (the capability
report, the hardware inventory, full process rows), never an "unchanged since last time"
marker that a replay would have to reconstruct. Time is integer nanoseconds since the Unix
epoch (UTC) throughout, so values are exact and independent of time zones.

The same contract exists as an Arrow schema (:mod:`sreagent.telemetry.arrow`), which is what
travels on the wire and lands in Parquet. docs/formats.md documents every field and limit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION: Literal["sreagent.batch/v1"] = "sreagent.batch/v1"

# Limits, shared by the collector (before sending) and the controller (on receipt).
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest encoded body (after transfer compression) a controller accepts."""
MAX_DECODED_BYTES = 64 * 1024 * 1024
"""Largest body after undoing transfer compression (a guard against compression bombs)."""
MAX_SAMPLES = 50_000
MAX_PROCESSES = 5_000
MAX_EVENTS = 5_000
MAX_CAPABILITIES = 256
MAX_LABELS = 16
"""Labels on one sample, event or batch."""
MAX_METRIC_LEN = 200
MAX_LABEL_KEY_LEN = 100
MAX_LABEL_VALUE_LEN = 256
MAX_ENTITY_LEN = 256
MAX_ID_LEN = 128
MAX_HOST_LEN = 253
MAX_EPOCH_LEN = 64
MAX_MESSAGE_LEN = 4096
MAX_COMMAND_LEN = 1024

METRIC_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
"""Prometheus metric-name syntax."""
LABEL_KEY_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
EVENT_KIND_PATTERN = r"^[a-z][a-z0-9_]*$"

Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LEN, pattern=ID_PATTERN)]
Host = Annotated[str, StringConstraints(min_length=1, max_length=MAX_HOST_LEN)]
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_METRIC_LEN, pattern=METRIC_PATTERN)
]
Entity = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ENTITY_LEN)]
LabelKey = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_LABEL_KEY_LEN, pattern=LABEL_KEY_PATTERN)
]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE_LEN)]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=MAX_LABELS)]
TimeNs = Annotated[int, Field(ge=0, lt=2**63)]
Count = Annotated[int, Field(ge=0, lt=2**63)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Text = Annotated[str, StringConstraints(max_length=MAX_MESSAGE_LEN)]

SourceMode = Literal["kernel", "fallback", "off"]
Severity = Literal["info", "warning", "error", "critical"]
DiskKind = Literal["nvme", "ssd", "hdd", "virtual", "unknown"]


def _sorted_labels(labels: dict[str, str]) -> dict[str, str]:
    return dict(sorted(labels.items()))


SortedLabels = Annotated[Labels, AfterValidator(_sorted_labels)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Sample(_Model):
    """One measurement: a metric of an entity at an instant."""

    ts_ns: TimeNs
    """When the value was measured, ns since the Unix epoch (UTC)."""
    metric: MetricName
    """Prometheus-style name with a unit suffix (``cpu_utilisation_ratio``)."""
    entity: Entity
    """What was measured: ``host``, ``cpu/3``, ``disk/nvme0n1``, ``cgroup/<path>``, ``gpu/0``..."""
    labels: SortedLabels = {}
    """Extra dimensions (``mode=user``); sorted by key."""
    value: FiniteFloat
    """The value; always finite (an unknown value is an absent sample)."""


class ProcessRow(_Model):
    """One process as seen by a full process scan (complete, never a delta)."""

    ts_ns: TimeNs
    """When the process was scanned, ns since the epoch."""
    pid: Annotated[int, Field(ge=0, lt=2**31)]
    """Process id."""
    ppid: Annotated[int, Field(ge=0, lt=2**31)]
    """Parent process id."""
    comm: Annotated[str, StringConstraints(max_length=64)]
    """Command name (`/proc/<pid>/comm`)."""
    cmdline: Annotated[str, StringConstraints(max_length=MAX_COMMAND_LEN)] = ""
    """Command line, arguments joined by spaces, cut at 1024 characters."""
    uid: Annotated[int, Field(ge=0, lt=2**32)] = 0
    """Real user id."""
    state: Annotated[str, StringConstraints(max_length=1)] = ""
    """Scheduler state letter (`R`, `S`, `D`, `Z`...)."""
    cgroup: Annotated[str, StringConstraints(max_length=512)] = ""
    """Path of the process's cgroup (v2 path, or the v1 cpu controller's path)."""
    threads: Count = 1
    """Number of threads."""
    cpu_seconds_total: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    """User plus system CPU time since the process started."""
    cpu_ratio: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    """CPU used over the last interval, in cores (1.0 = one core busy)."""
    rss_bytes: Count = 0
    """Resident set size."""
    fds: Count | None = None
    """Open file descriptors; null when they could not be counted (no permission)."""
    read_bytes_per_second: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Storage bytes read per second over the interval (`/proc/<pid>/io`); null without permission."""
    write_bytes_per_second: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Storage bytes written per second over the interval; null without permission."""
    cpu_delay_seconds_total: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Delay accounting (taskstats): time runnable but waiting for a CPU."""
    blkio_delay_seconds_total: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Delay accounting: time waiting for block IO."""
    swapin_delay_seconds_total: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Delay accounting: time waiting for swap-in."""


class Event(_Model):
    """Something that happened once: an OOM kill, a GPU Xid, a link going down."""

    ts_ns: TimeNs
    """When it happened, ns since the epoch."""
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=EVENT_KIND_PATTERN)]
    """Class of event (``oom_kill``, ``gpu_xid``, ``link_down``...; see docs/formats.md)."""
    entity: Entity
    """What it happened to (`process/<pid>`, `gpu/0`, `nic/eth0`...)."""
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Where it was seen (``kmsg``, ``ebpf``, ``nvml``, ``netlink``...)."""
    severity: Severity = "info"
    """How bad it is."""
    message: Text = ""
    """The original message (a kernel log line, say), cut at 4096 characters."""
    attributes: SortedLabels = {}
    """Parsed details (`xid=79`, `victim_comm=stress`...), sorted by key."""


class SourceCapability(_Model):
    """How one telemetry source is being read on this host, and why."""

    source: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Source name (`cpu`, `netlink`, `ebpf`, `nvml`...)."""
    mode: SourceMode
    """`kernel`: the preferred kernel interface; `fallback`: a weaker file-based route; `off`: not read."""
    reason: Text = ""
    """Why this mode (the missing capability, file or library, with the error)."""


class DiskInfo(_Model):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Kernel device name (`nvme0n1`, `sda`)."""
    kind: DiskKind = "unknown"
    """Device class, from `rotational` and the driver."""
    size_bytes: Count = 0
    """Capacity."""
    rotational: bool = False
    """True for spinning disks."""
    driver: Annotated[str, StringConstraints(max_length=64)] = ""
    """Kernel driver."""


class NicInfo(_Model):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Interface name."""
    speed_mbps: Count | None = None
    """Link speed; null when the driver does not report one."""
    driver: Annotated[str, StringConstraints(max_length=64)] = ""
    """Kernel driver."""
    mtu: Count = 0
    """MTU in bytes."""


class GpuInfo(_Model):
    index: Count
    """NVML device index."""
    uuid: Annotated[str, StringConstraints(max_length=128)] = ""
    """GPU UUID."""
    model: Annotated[str, StringConstraints(max_length=128)] = ""
    """Product name."""
    memory_bytes: Count = 0
    """Framebuffer memory."""
    power_cap_watts: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Enforced power limit."""


class IbPortInfo(_Model):
    device: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """RDMA device (`mlx5_0`)."""
    port: Count
    """Port number."""
    rate_gbps: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Link rate."""
    state: Annotated[str, StringConstraints(max_length=32)] = ""
    """Port state (`ACTIVE`, `DOWN`...)."""


class Inventory(_Model):
    """Hardware of the host, so analysis can use hardware-aware thresholds."""

    cpu_model: Annotated[str, StringConstraints(max_length=256)] = ""
    """CPU model name."""
    cpu_count: Count = 0
    """Logical CPUs."""
    memory_bytes: Count = 0
    """Physical memory."""
    disks: list[DiskInfo] = []
    """Block devices."""
    nics: list[NicInfo] = []
    """Network interfaces."""
    gpus: list[GpuInfo] = []
    """GPUs."""
    ib_ports: list[IbPortInfo] = []
    """InfiniBand/RDMA ports."""
    cpu_sockets: Count | None = None
    """CPU packages (sockets) with an online CPU; null when sysfs does not say."""
    cpu_cores: Count | None = None
    """Physical cores with an online CPU (`cpu_count` counts their hardware threads); null when sysfs does not say."""
    numa_nodes: Count | None = None
    """Online NUMA nodes; null on a kernel built without NUMA support."""


class Batch(_Model):
    """One self-contained delivery from a collector (``sreagent.batch/v1``)."""

    schema_version: Literal["sreagent.batch/v1"] = SCHEMA_VERSION
    """Contract version; a controller refuses versions it does not know."""
    collector_id: Id
    """Stable across restarts (kept in the collector's state directory)."""
    host: Host
    """Host name of the observed machine (the node name under Kubernetes)."""
    producer_epoch: Annotated[
        str, StringConstraints(min_length=1, max_length=MAX_EPOCH_LEN, pattern=ID_PATTERN)
    ]
    """New on every collector start; with ``seq`` it orders and deduplicates batches."""
    seq: Annotated[int, Field(ge=1, lt=2**63)]
    """Monotonic within one epoch, starting at 1."""
    sent_at_ns: TimeNs
    """The collector's wall clock when the batch was built."""
    collector_version: Annotated[str, StringConstraints(max_length=64)] = ""
    """Version of the collector that built the batch."""
    labels: SortedLabels = {}
    """Host-level labels (cluster, node pool, ...)."""
    samples: Annotated[list[Sample], Field(max_length=MAX_SAMPLES)] = []
    """Measurements taken in this interval."""
    processes: Annotated[list[ProcessRow], Field(max_length=MAX_PROCESSES)] = []
    """Full process rows from the latest process scan, when one ran in this interval."""
    events: Annotated[list[Event], Field(max_length=MAX_EVENTS)] = []
    """Events seen in this interval."""
    capabilities: Annotated[list[SourceCapability], Field(max_length=MAX_CAPABILITIES)] = []
    """How every source was read (the capability report)."""
    inventory: Inventory | None = None
    """The host's hardware, in every batch so that each batch is self-contained."""

    @property
    def batch_id(self) -> str:
        """The dedupe key as one string: ``collector_id/producer_epoch/seq``."""
        return batch_id(self.collector_id, self.producer_epoch, self.seq)


def batch_id(collector_id: str, producer_epoch: str, seq: int) -> str:
    """The dedupe key (collector_id, producer_epoch, seq) as one string."""
    return f"{collector_id}/{producer_epoch}/{seq}"
