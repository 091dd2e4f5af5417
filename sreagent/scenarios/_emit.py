"""Turn derived columns into batch frames: the exact contract a live collector produces.

Every step becomes one self-contained batch per host (capabilities, inventory and full process
rows in every batch). The rows of all steps are built at once as Arrow columns from numpy and
sliced per batch (zero-copy), so an hour at one-second resolution takes well under a second.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from sreagent import __version__
from sreagent.scenarios._derive import ProcessColumns, SeriesBook
from sreagent.scenarios._world import World
from sreagent.telemetry.arrow import (
    BATCH_SCHEMA,
    EVENTS_SCHEMA,
    LABELS,
    PROCESSES_SCHEMA,
    SAMPLES_SCHEMA,
    BatchFrame,
    BatchHeader,
)
from sreagent.telemetry.batch import (
    DiskInfo,
    GpuInfo,
    IbPortInfo,
    Inventory,
    NicInfo,
    SourceCapability,
)

LAB_LABEL = "sreagent_lab_scenario"
"""Batch label naming the scenario: the one mark that tells synthetic telemetry from captured."""


def _capabilities(world: World) -> list[SourceCapability]:
    """The capability report a collector on this host would send (its source names)."""
    p = world.profile
    gpu, ib = p.gpus is not None, bool(p.ib_ports)
    rows = [
        ("cpu", "kernel", "/proc/stat"),
        ("perf", "kernel", "perf_event_open software counters, all CPUs"),
        ("memory", "kernel", "/proc/meminfo, /proc/vmstat"),
        ("psi", "kernel", "/proc/pressure"),
        ("disk", "kernel", "/sys/block/*/stat, statvfs"),
        ("netlink", "kernel", "rtnetlink RTM_GETLINK IFLA_STATS64"),
        ("tcp", "kernel", "/proc/net/snmp, /proc/net/netstat"),
        ("sock_diag", "kernel", "sock_diag inet_diag dump, IPv4 and IPv6"),
        ("cgroup", "kernel", "v2 at /sys/fs/cgroup"),
        ("taskstats", "kernel", "taskstats generic netlink"),
        ("processes", "kernel", "/proc/<pid>"),
        ("nvml", "kernel" if gpu else "off",
         f"NVML, {p.gpus.count} GPUs" if p.gpus else "nvmlInit: NVML Shared Library Not Found"),
        ("ib", "kernel" if ib else "off",
         "/sys/class/infiniband" if ib else "/sys/class/infiniband absent: no RDMA devices"),
        ("inventory", "kernel", "/proc/cpuinfo, /sys/block, /class/net"),
        ("kmsg", "kernel", "reading /dev/kmsg"),
        ("ebpf", "kernel", "tracepoints: exec, exit, oom, tcp_retransmit, tcp_state, "
                           "packet_drop, block_latency, runqueue_latency"),
    ]
    return [SourceCapability.model_validate({"source": s, "mode": m, "reason": r})
            for s, m, r in rows]


def _inventory(world: World) -> Inventory:
    p = world.profile
    uuid_seed = hashlib.sha256(f"{p.host}".encode()).hexdigest()
    gpus = []
    if p.gpus:
        for i in range(p.gpus.count):
            h = hashlib.sha256(f"{uuid_seed}/{i}".encode()).hexdigest()
            gpus.append(GpuInfo(index=i, uuid=f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",
                                model=p.gpus.model, memory_bytes=p.gpus.memory_bytes,
                                power_cap_watts=p.gpus.power_cap_watts))
    return Inventory(
        cpu_model=p.cpu_model, cpu_count=p.cpu_count, memory_bytes=p.memory_bytes,
        disks=[DiskInfo(name=d.name, kind=d.kind, size_bytes=d.size_bytes,
                        rotational=d.kind == "hdd",
                        driver={"nvme": "nvme", "hdd": "sd", "ssd": "sd", "virtual": "virtio_blk"}[d.kind])
               for d in p.disks],
        nics=[NicInfo(name=n.name, speed_mbps=n.speed_mbps, driver=n.driver, mtu=n.mtu)
              for n in p.nics],
        gpus=gpus,
        ib_ports=[IbPortInfo(device=i.device, port=i.port, rate_gbps=i.rate_gbps, state="ACTIVE")
                  for i in p.ib_ports],
    )


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def samples_table(world: World, book: SeriesBook, ts: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """All samples of all steps, step-major, and the row offset of each step."""
    n, s = world.steps, len(book.keys)
    values = np.stack(book.values)  # (series, steps)
    present = np.ones((s, n), bool)
    for i, mask in enumerate(book.present):
        if mask is not None:
            present[i] = mask
    keep = present.T.ravel()
    series_index = np.tile(np.arange(s, dtype=np.int64), n)[keep]
    metric = pa.array([k[0] for k in book.keys], pa.string())
    entity = pa.array([k[1] for k in book.keys], pa.string())
    labels = pa.array([list(k[2]) for k in book.keys], LABELS)
    take = pa.array(series_index)
    table = pa.Table.from_arrays(
        [
            pa.array(np.repeat(ts, s)[keep]),
            metric.take(take),
            entity.take(take),
            labels.take(take),
            pa.array(values.T.ravel()[keep]),
        ],
        schema=SAMPLES_SCHEMA,
    )
    return table, _offsets(present.sum(axis=0))


def _process_table(world: World, cols: ProcessColumns, ts: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    n, dt = world.steps, world.dt
    order = sorted(range(len(cols.procs)), key=lambda i: cols.procs[i].pid)
    procs = [cols.procs[i] for i in order]
    alive = np.array([p.alive for p in procs])
    cpu = cols.cpu[order]
    cpu_total = np.array([p.uptime_s for p in procs])[:, None] + np.cumsum(cpu * alive * dt, axis=1)
    rss = np.array([p.rss for p in procs]) * alive
    fds = np.array([p.fds for p in procs])
    rd, wr = cols.read_bps[order], cols.write_bps[order]
    io = (rd + wr) > 1e6
    kernel_thread = np.array([p.ppid == 2 for p in procs])[:, None]
    state = np.where(cpu >= 0.5, 1, np.where(io & (cols.blkio_delay[order] > 0) & (rd + wr > 5e7), 2, 0))
    state = np.where(kernel_thread & (state == 0), 3, state)
    keep = alive.T.ravel()
    idx = pa.array(np.tile(np.arange(len(procs), dtype=np.int64), n)[keep])

    def per_proc(values: list[object], typ: pa.DataType) -> pa.Array:
        return pa.array(values, typ).take(idx)

    def per_step(matrix: np.ndarray, decimals: int | None = 6) -> pa.Array:
        flat = matrix.T.ravel()[keep]
        return pa.array(np.round(flat, decimals) + 0.0 if decimals is not None else flat)

    states = pa.array(["S", "R", "D", "I"]).take(pa.array(state.T.ravel()[keep]))
    table = pa.Table.from_arrays(
        [
            pa.array(np.repeat(ts, len(procs))[keep]),
            per_proc([p.pid for p in procs], pa.int32()),
            per_proc([p.ppid for p in procs], pa.int32()),
            per_proc([p.comm for p in procs], pa.string()),
            per_proc([p.cmdline if p.ppid != 2 else "" for p in procs], pa.string()),
            per_proc([p.uid for p in procs], pa.int64()),
            states,
            per_proc(["/" + p.cgroup if p.ppid != 2 else "/" for p in procs], pa.string()),
            per_proc([p.threads for p in procs], pa.int64()),
            per_step(np.maximum(cpu_total, 0.0), 2),
            per_step(np.maximum(cpu, 0.0), 4),
            pa.array(np.rint(rss.T.ravel()[keep]).astype(np.int64)),
            pa.array(np.rint(fds.T.ravel()[keep]).astype(np.int64)),
            per_step(np.maximum(rd, 0.0), 0),
            per_step(np.maximum(wr, 0.0), 0),
            per_step(cols.cpu_delay[order], 3),
            per_step(cols.blkio_delay[order], 3),
            per_step(cols.swapin_delay[order], 3),
        ],
        schema=PROCESSES_SCHEMA,
    )
    return table, _offsets(alive.sum(axis=0))


def _events_by_step(world: World, ts: np.ndarray) -> dict[int, pa.Table]:
    res_ns = int(world.dt * 10**9)
    by_step: dict[int, list[dict[str, object]]] = {}
    for event in sorted(world.events, key=lambda e: (e["step"], e["kind"], e["entity"], e["message"])):
        by_step.setdefault(int(event["step"]), []).append(event)  # type: ignore[call-overload]
    tables = {}
    for step, events in by_step.items():
        rows = []
        for k, e in enumerate(events):
            # Seen during the interval that ends at this batch, in order.
            offset = max(res_ns // 2 - k * 1_000_000, 1)
            rows.append({"ts_ns": int(ts[step]) - offset, "kind": e["kind"], "entity": e["entity"],
                         "source": e["source"], "severity": e["severity"],
                         "message": e["message"], "attributes": e["attributes"]})
        tables[step] = pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA)
    return tables


def build_frames(world: World, book: SeriesBook, cols: ProcessColumns,
                 scenario_id: str) -> tuple[list[BatchFrame], pa.Table]:
    """One frame per step, and the long table of every sample (what the frames slice)."""
    definition = world.definition
    res_ns = int(world.dt * 10**9)
    ts = definition.start_ns + np.arange(world.steps, dtype=np.int64) * res_ns
    samples, sample_offsets = samples_table(world, book, ts)
    processes, process_offsets = _process_table(world, cols, ts)
    events = _events_by_step(world, ts)
    empty_events = EVENTS_SCHEMA.empty_table()
    epoch = "lab-" + hashlib.sha256(f"{scenario_id}:{definition.seed}".encode()).hexdigest()[:16]
    template = BatchHeader(
        schema_version="sreagent.batch/v1", collector_id=f"lab-{world.profile.host}",
        host=world.profile.host, producer_epoch=epoch, seq=1, sent_at_ns=int(ts[0]),
        collector_version=f"sreagent-lab/{__version__}",
        labels={**world.profile.labels, LAB_LABEL: scenario_id},
        capabilities=_capabilities(world), inventory=_inventory(world),
    )
    # The collector's send time trails the sample time by its own work: a few milliseconds.
    delay = world.rng("sent-at").integers(2_000_000, 25_000_000, world.steps)
    frames = []
    for i in range(world.steps):
        header = template.model_copy(update={"seq": i + 1, "sent_at_ns": int(ts[i] + delay[i])})
        frames.append(BatchFrame(
            header=header,
            samples=samples.slice(sample_offsets[i], sample_offsets[i + 1] - sample_offsets[i]),
            processes=processes.slice(process_offsets[i], process_offsets[i + 1] - process_offsets[i]),
            events=events.get(i, empty_events),
        ))
    return frames, samples


def frame_to_wire(frame: BatchFrame) -> bytes:
    """The Arrow IPC wire body of a frame (what ``encode_batch`` would send), built from columns."""
    import pyarrow.ipc as ipc

    header = frame.header.model_dump()
    columns: dict[str, pa.Array] = {}
    for field in BATCH_SCHEMA:
        if field.name in ("samples", "processes", "events"):
            rows = getattr(frame, field.name).combine_chunks()
            struct = pa.StructArray.from_arrays(
                [rows.column(c).combine_chunks() if rows.num_rows else pa.array([], rows.schema.field(c).type)
                 for c in rows.column_names],
                fields=list(field.type.value_type),
            )
            columns[field.name] = pa.ListArray.from_arrays(
                pa.array([0, len(struct)], pa.int32()), struct, type=field.type)
        else:
            value = header[field.name]
            if field.name == "labels":
                value = list(value.items())
            columns[field.name] = pa.array([value], field.type)
    table = pa.Table.from_arrays([columns[f.name] for f in BATCH_SCHEMA], schema=BATCH_SCHEMA)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, BATCH_SCHEMA, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
