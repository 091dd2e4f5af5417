"""The BCC backend: tracepoint programs compiled at start-up, read through maps and a ring buffer.

Every program reads tracepoint ARGUMENTS (``args->...``, laid out by BCC from the running
kernel's tracefs format files) and BPF helpers (``bpf_get_current_uid_gid``,
``bpf_ktime_get_ns``...), never kernel structs: the headers BCC compiles against may be older
than the kernel (see scripts/setup-bcc-headers.sh), and a struct read through them returns
wrong values without any error. Which probes exist is decided from the format files, so a
tracepoint or field the kernel lacks drops that probe instead of failing the whole program.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sreagent.collector._ebpf._summary import (
    Connection,
    ExecRecord,
    ExitRecord,
    IntervalData,
    OomRecord,
)
from sreagent.collector._ebpf._tracefs import TracepointFormat

HEADER_CACHE = Path("/var/cache/sreagent/kernel-headers/current")
"""Where scripts/setup-bcc-headers.sh leaves the merged header tree."""

EV_EXEC, EV_EXIT, EV_OOM = 1, 2, 3
COMM_LEN, FILENAME_LEN = 16, 256
RINGBUF_PAGES = 64

_PRELUDE = r"""
#define EV_EXEC 1
#define EV_EXIT 2
#define EV_OOM 3
struct event_t {
    u32 type;
    u32 pid;
    u32 uid;
    u32 pad;
    u64 ts;
    u64 total_vm;
    u64 anon_rss;
    char comm[16];
    char filename[256];
};
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_ARRAY(counters, u64, 4);   /* 0: execs, 1: exits, 2: ring buffer full */

static __always_inline void count_at(int idx) {
    u64 *value = counters.lookup(&idx);
    if (value)
        __sync_fetch_and_add(value, 1);
}

static __always_inline struct event_t *reserve_event(u32 type) {
    struct event_t *e = events.ringbuf_reserve(sizeof(struct event_t));
    if (!e) {
        count_at(2);
        return 0;
    }
    __builtin_memset(e, 0, sizeof(*e));
    e->type = type;
    e->ts = bpf_ktime_get_ns();
    return e;
}
"""

# (name, tracepoint, fields it needs, C text)
PROBES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "exec",
        "sched:sched_process_exec",
        ("filename", "pid"),
        r"""
TRACEPOINT_PROBE(sched, sched_process_exec) {
    count_at(0);
    struct event_t *e = reserve_event(EV_EXEC);
    if (!e)
        return 0;
    e->pid = args->pid;
    e->uid = (u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    TP_DATA_LOC_READ_STR(e->filename, filename, sizeof(e->filename));
    events.ringbuf_submit(e, 0);
    return 0;
}
""",
    ),
    (
        "exit",
        "sched:sched_process_exit",
        ("comm", "pid"),
        r"""
TRACEPOINT_PROBE(sched, sched_process_exit) {
    /* Threads exit too; a process exit is its thread-group leader's (pid == tgid). */
    u64 id = bpf_get_current_pid_tgid();
    if ((u32)id != (u32)(id >> 32))
        return 0;
    count_at(1);
    struct event_t *e = reserve_event(EV_EXIT);
    if (!e)
        return 0;
    e->pid = args->pid;
    bpf_probe_read_kernel(&e->comm, sizeof(e->comm), args->comm);
    events.ringbuf_submit(e, 0);
    return 0;
}
""",
    ),
    (
        "oom",
        "oom:mark_victim",
        ("pid",),
        r"""
TRACEPOINT_PROBE(oom, mark_victim) {
    struct event_t *e = reserve_event(EV_OOM);
    if (!e)
        return 0;
    e->pid = args->pid;
#ifdef OOM_DETAILS
    e->total_vm = args->total_vm;
    e->anon_rss = args->anon_rss;
    e->uid = args->uid;
    TP_DATA_LOC_READ_STR(e->comm, comm, sizeof(e->comm));
#endif
    events.ringbuf_submit(e, 0);
    return 0;
}
""",
    ),
    (
        "tcp_retransmit",
        "tcp:tcp_retransmit_skb",
        ("family", "sport", "dport", "state", "saddr", "daddr", "saddr_v6", "daddr_v6"),
        r"""
struct conn_t {
    u16 family;
    u16 sport;
    u16 dport;
    u16 state;
    u8 saddr[16];
    u8 daddr[16];
};
BPF_HASH(retrans, struct conn_t, u64, 4096);
TRACEPOINT_PROBE(tcp, tcp_retransmit_skb) {
    struct conn_t key = {};
    key.family = args->family;
    key.sport = args->sport;
    key.dport = args->dport;
    key.state = args->state;
    if (args->family == 2) {
        bpf_probe_read_kernel(key.saddr, 4, args->saddr);
        bpf_probe_read_kernel(key.daddr, 4, args->daddr);
    } else {
        bpf_probe_read_kernel(key.saddr, 16, args->saddr_v6);
        bpf_probe_read_kernel(key.daddr, 16, args->daddr_v6);
    }
    retrans.increment(key);
    return 0;
}
""",
    ),
    (
        "tcp_state",
        "sock:inet_sock_set_state",
        ("oldstate", "newstate", "protocol"),
        r"""
struct transition_t {
    s32 oldstate;
    s32 newstate;
};
BPF_HASH(transitions, struct transition_t, u64, 256);
TRACEPOINT_PROBE(sock, inet_sock_set_state) {
    if (args->protocol != 6)   /* IPPROTO_TCP */
        return 0;
    struct transition_t key = {};
    key.oldstate = args->oldstate;
    key.newstate = args->newstate;
    transitions.increment(key);
    return 0;
}
""",
    ),
    (
        "packet_drop",
        "skb:kfree_skb",
        ("reason",),
        r"""
/* Not TRACEPOINT_PROBE: the struct BCC would generate names the field's type, enum
   skb_drop_reason, and only <linux/skbuff.h> defines it, which makes the compile several times
   slower. The argument is read at the offset the running kernel's format file gives
   (REASON_OFFSET), so this is still a tracepoint-argument read; Python attaches it by name. */
BPF_HASH(drops, u32, u64, 1024);
int on_kfree_skb(void *ctx) {
    u32 reason = 0;
    bpf_probe_read_kernel(&reason, sizeof(reason), (char *)ctx + REASON_OFFSET);
    drops.increment(reason);
    return 0;
}
""",
    ),
    (
        "block_latency",
        "block:block_rq_issue",
        ("dev", "sector"),
        r"""
struct request_t {
    u32 dev;
    u32 pad;
    u64 sector;
};
struct dev_slot_t {
    u32 dev;
    u32 slot;
};
BPF_HASH(block_start, struct request_t, u64, 16384);
BPF_HASH(block_hist, struct dev_slot_t, u64, 2048);
TRACEPOINT_PROBE(block, block_rq_issue) {
    struct request_t key = {};
    key.dev = args->dev;
    key.sector = args->sector;
    u64 now = bpf_ktime_get_ns();
    block_start.update(&key, &now);
    return 0;
}
TRACEPOINT_PROBE(block, block_rq_complete) {
    struct request_t key = {};
    key.dev = args->dev;
    key.sector = args->sector;
    u64 *start = block_start.lookup(&key);
    if (!start)
        return 0;
    u64 usecs = (bpf_ktime_get_ns() - *start) / 1000;
    block_start.delete(&key);
    struct dev_slot_t slot = {};
    slot.dev = key.dev;
    slot.slot = bpf_log2l(usecs);
    block_hist.increment(slot);
    return 0;
}
""",
    ),
    (
        "runqueue_latency",
        "sched:sched_switch",
        ("prev_pid", "prev_state", "next_pid"),
        r"""
BPF_HASH(wakeup_ts, u32, u64, 32768);
BPF_HASH(runq_hist, u32, u64, 64);
static __always_inline void mark_runnable(u32 pid) {
    if (pid == 0)
        return;
    u64 now = bpf_ktime_get_ns();
    wakeup_ts.update(&pid, &now);
}
TRACEPOINT_PROBE(sched, sched_wakeup) {
    mark_runnable(args->pid);
    return 0;
}
TRACEPOINT_PROBE(sched, sched_wakeup_new) {
    mark_runnable(args->pid);
    return 0;
}
TRACEPOINT_PROBE(sched, sched_switch) {
    /* A task switched out while still runnable (preempted: TASK_REPORT_MAX, or yielding:
       TASK_RUNNING) waits in the run queue from now on. include/trace/events/sched.h
       reports sleep states in the low byte (TASK_REPORT), so low byte 0 means runnable. */
    if ((args->prev_state & 0xff) == 0)
        mark_runnable(args->prev_pid);
    u32 next = args->next_pid;
    u64 *since = wakeup_ts.lookup(&next);
    if (!since)
        return 0;
    u64 usecs = (bpf_ktime_get_ns() - *since) / 1000;
    wakeup_ts.delete(&next);
    u32 slot = bpf_log2l(usecs);
    runq_hist.increment(slot);
    return 0;
}
""",
    ),
)

# Extra tracepoints a probe attaches to beyond its first one (must exist too).
EXTRA_TRACEPOINTS = {
    "block_latency": ("block:block_rq_complete",),
    "runqueue_latency": ("sched:sched_wakeup", "sched:sched_wakeup_new"),
}


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint32), ("pid", ctypes.c_uint32), ("uid", ctypes.c_uint32),
        ("pad", ctypes.c_uint32), ("ts", ctypes.c_uint64), ("total_vm", ctypes.c_uint64),
        ("anon_rss", ctypes.c_uint64), ("comm", ctypes.c_char * COMM_LEN),
        ("filename", ctypes.c_char * FILENAME_LEN),
    ]  # fmt: skip


def plan_program(formats: dict[str, TracepointFormat | None]) -> tuple[str, list[str], list[str]]:
    """Choose probes the running kernel supports; return (C text, probes used, reasons left out).

    ``formats`` maps ``category:event`` to its parsed format file (``None``: no such tracepoint).
    """
    parts = [_PRELUDE.replace("RINGBUF_PAGES", str(RINGBUF_PAGES))]
    used: list[str] = []
    left_out: list[str] = []
    for name, tracepoint, needed, text in PROBES:
        fmt = formats.get(tracepoint)
        if fmt is None:
            left_out.append(f"{name}: no tracepoint {tracepoint}")
            continue
        missing = [f for f in needed if f not in fmt.fields]
        if missing:
            left_out.append(f"{name}: {tracepoint} lacks {', '.join(missing)}")
            continue
        extra_missing = [tp for tp in EXTRA_TRACEPOINTS.get(name, ()) if formats.get(tp) is None]
        if extra_missing:
            left_out.append(f"{name}: no tracepoint {', '.join(extra_missing)}")
            continue
        if name == "oom" and {"total_vm", "anon_rss", "uid", "comm"} <= fmt.fields.keys():
            parts.append("#define OOM_DETAILS 1\n")
        if name == "packet_drop":
            offset, size = fmt.offsets.get("reason", (-1, 0))
            if offset < 0 or size != 4:
                left_out.append(f"{name}: {tracepoint} reason is not a 4-byte field")
                continue
            text = text.replace("REASON_OFFSET", str(offset))
        parts.append(text)
        used.append(name)
    return "".join(parts), used, left_out


def tracepoints_needed() -> list[str]:
    names = [tp for _, tp, _, _ in PROBES]
    for extra in EXTRA_TRACEPOINTS.values():
        names.extend(extra)
    return names


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Keep clang's warnings about the (older) headers off the terminal; hand back its errors.

    BCC reports a failed compile as a bare "Failed to compile BPF module" and prints the real
    diagnostics on file descriptor 2, so they are captured and quoted in the capability reason.
    """
    errors: list[str] = []
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        yield errors
        return
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), fd)
        try:
            yield errors
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            errors.extend(
                line.strip()
                for line in text.splitlines()
                if "error" in line.lower() and "warning" not in line.lower()
            )


def _header_env(release: str) -> str:
    """Point BCC at the cached headers when the kernel has none of its own; say which."""
    build = Path("/lib/modules") / release / "build"
    if os.environ.get("BCC_KERNEL_SOURCE"):
        return f"BCC_KERNEL_SOURCE={os.environ['BCC_KERNEL_SOURCE']}"
    if (build / "include/linux/kconfig.h").exists():
        return f"headers {build.resolve()}"
    if (HEADER_CACHE / "include/linux/kconfig.h").exists():
        os.environ["BCC_KERNEL_SOURCE"] = str(HEADER_CACHE)
        return f"BCC_KERNEL_SOURCE={HEADER_CACHE.resolve()}"
    return "no kernel headers found (run scripts/setup-bcc-headers.sh)"


def _scalar(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


class BccBackend:
    """Loaded BCC programs; :meth:`drain` empties their maps into an :class:`IntervalData`."""

    name = "bcc"

    def __init__(self, program: str, used: list[str], *, max_events: int) -> None:
        self.headers = _header_env(platform.release())
        try:
            import bcc
        except ImportError as err:
            raise RuntimeError(f"python3-bpfcc is not importable: {err}") from err
        self.version = getattr(bcc, "__version__", "?")
        failure: Exception | None = None
        with _captured_stderr() as errors:
            try:
                self._bpf: Any = bcc.BPF(
                    text=program.encode(), cflags=["-Wno-ignored-attributes", "-w"]
                )
            except Exception as err:  # bcc raises bare Exception for compile and load errors
                failure = err
        if failure is not None:
            detail = "; ".join(errors[:3])
            raise RuntimeError(
                f"{failure}{': ' + detail if detail else ''} ({self.headers})"
            ) from failure
        self.used = used
        self._max_events = max_events
        self._pending = IntervalData()
        self._last_counters = [0, 0, 0]
        self._tables: dict[str, Any] = {"counters": self._bpf[b"counters"]}
        self._bpf[b"events"].open_ring_buffer(self._on_event)
        if "packet_drop" in used:
            self._bpf.attach_tracepoint(tp=b"skb:kfree_skb", fn_name=b"on_kfree_skb")

    def _on_event(self, _ctx: Any, data: Any, _size: int) -> None:
        e = ctypes.cast(data, ctypes.POINTER(_Event)).contents
        comm = e.comm.decode("utf-8", "replace")
        pending = self._pending
        if e.type == EV_EXEC:
            if len(pending.execs) < self._max_events:
                pending.execs.append(
                    ExecRecord(e.ts, e.pid, e.uid, comm, e.filename.decode("utf-8", "replace"))
                )
            else:
                pending.lost += 1
        elif e.type == EV_EXIT:
            if len(pending.exits) < self._max_events:
                pending.exits.append(ExitRecord(e.ts, e.pid, comm))
            else:
                pending.lost += 1
        elif e.type == EV_OOM:
            detailed = bool(e.total_vm or e.anon_rss or comm)
            # The tracepoint already reports kB (its print format says "total-vm=%lukB").
            pending.ooms.append(
                OomRecord(
                    e.ts,
                    e.pid,
                    comm,
                    e.total_vm if detailed else None,
                    e.anon_rss if detailed else None,
                    e.uid if detailed else None,
                )
            )

    def _drain_hash(self, name: str) -> list[tuple[Any, int]]:
        if name not in self._tables:
            # Opened once: bcc copies the table object on every lookup. (`name in self._bpf`
            # only sees tables already opened, so ask for it directly.)
            try:
                self._tables[name] = self._bpf[name.encode()]
            except KeyError:
                self._tables[name] = None  # that probe was left out
        table = self._tables[name]
        if table is None:
            return []
        try:
            raw = list(table.items_lookup_and_delete_batch())
        except Exception:  # kernels without batch ops: read, then delete what was read
            raw = list(table.items())
            for key, _ in raw:
                with contextlib.suppress(KeyError):
                    del table[key]
        # The batch call hands back plain ints for scalar keys and values, items() ctypes.
        return [(_scalar(k), int(_scalar(v))) for k, v in raw]

    def drain(self) -> IntervalData:
        self._bpf.ring_buffer_consume()
        data, self._pending = self._pending, IntervalData()
        counters = self._tables["counters"]
        now = [int(counters[ctypes.c_int(i)].value) for i in range(3)]
        data.exec_count = now[0] - self._last_counters[0]
        data.exit_count = now[1] - self._last_counters[1]
        data.lost += now[2] - self._last_counters[2]
        self._last_counters = now
        for key, count in self._drain_hash("retrans"):
            conn = Connection(
                int(key.family),
                bytes(key.saddr),
                int(key.sport),
                bytes(key.daddr),
                int(key.dport),
                int(key.state),
            )
            data.retransmits[conn] = data.retransmits.get(conn, 0) + count
        for key, count in self._drain_hash("transitions"):
            pair = (int(key.oldstate), int(key.newstate))
            data.state_changes[pair] = data.state_changes.get(pair, 0) + count
        for key, count in self._drain_hash("drops"):
            data.drops[int(key)] = data.drops.get(int(key), 0) + count
        for key, count in self._drain_hash("block_hist"):
            hist = data.block_latency.setdefault(int(key.dev), {})
            hist[int(key.slot)] = hist.get(int(key.slot), 0) + count
        for key, count in self._drain_hash("runq_hist"):
            data.runq_latency[int(key)] = data.runq_latency.get(int(key), 0) + count
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._bpf.cleanup()
