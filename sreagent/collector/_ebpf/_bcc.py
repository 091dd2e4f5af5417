"""The BCC backend: tracepoint programs compiled at start-up, read through maps and a ring buffer.

The compile, load and attach happen in a short-lived child (``_loader.py``) that hands the
map and attachment descriptors over and exits, so libbcc and LLVM are never mapped into the
collector; the maps are read here with bpf(2) and the ring buffer through mmap
(``_bpfsys.py``).

Every program reads tracepoint ARGUMENTS (``args->...``, laid out by BCC from the running
kernel's tracefs format files) and BPF helpers (``bpf_get_current_uid_gid``,
``bpf_ktime_get_ns``...), never kernel structs: the headers BCC compiles against may be older
than the kernel (see scripts/setup-bcc-headers.sh), and a struct read through them returns
wrong values without any error. Which probes exist is decided from the format files, so a
tracepoint or field the kernel lacks drops that probe instead of failing the whole program.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


_EVENT = struct.Struct("=IIIIQQQ16s256s")
"""struct event_t of the prelude: type, pid, uid, pad, ts, total_vm, anon_rss, comm, filename."""
_CONN = struct.Struct("=HHHH16s16s")
"""struct conn_t: family, sport, dport, state, saddr, daddr."""
_PAIR = struct.Struct("=ii")
_DEV_SLOT = struct.Struct("=II")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
MAX_KEYS_PER_DRAIN = 16384
"""The largest map the daemon drains (block_start is private to the programs)."""


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class BccBackend:
    """BCC programs loaded by a short-lived child (``_loader.py``); :meth:`drain` empties
    their maps through bpf(2) and the ring buffer through mmap into an :class:`IntervalData`.
    Neither libbcc nor LLVM is ever mapped into this process."""

    name = "bcc"

    def __init__(self, program: str, used: list[str], *, max_events: int) -> None:
        from sreagent.collector._ebpf._bpfsys import Bpf, RingBuffer
        from sreagent.collector._ebpf._loader import load_in_child

        self._bpf = Bpf()
        self._loaded = load_in_child(program, used)
        try:
            self.version = self._loaded.version
            self.headers = self._loaded.headers
            self.used = used
            self._max_events = max_events
            self._last_counters = [0, 0, 0]
            events_fd = self._loaded.maps["events"][0]
            self._ring = RingBuffer(events_fd, self._loaded.ringbuf_bytes)
        except Exception:
            self._loaded.close()
            raise

    def _decode_events(self, data: IntervalData) -> None:
        max_events = self._max_events
        for record in list(self._ring.records()):
            if len(record) < _EVENT.size:
                continue
            kind, pid, uid, _pad, ts, total_vm, anon_rss, raw_comm, raw_file = _EVENT.unpack_from(
                record
            )
            comm = _cstr(raw_comm)
            if kind == EV_EXEC:
                if len(data.execs) < max_events:
                    data.execs.append(ExecRecord(ts, pid, uid, comm, _cstr(raw_file)))
                else:
                    data.lost += 1
            elif kind == EV_EXIT:
                if len(data.exits) < max_events:
                    data.exits.append(ExitRecord(ts, pid, comm))
                else:
                    data.lost += 1
            elif kind == EV_OOM:
                detailed = bool(total_vm or anon_rss or comm)
                # The tracepoint already reports kB (its print format says "total-vm=%lukB").
                data.ooms.append(
                    OomRecord(
                        ts,
                        pid,
                        comm,
                        total_vm if detailed else None,
                        anon_rss if detailed else None,
                        uid if detailed else None,
                    )
                )

    def _drain(self, name: str) -> list[tuple[bytes, int]]:
        found = self._loaded.maps.get(name)
        if found is None:
            return []  # that probe was left out
        fd, key_size, value_size = found
        return [
            (key, _U64.unpack_from(value)[0])
            for key, value in self._bpf.drain(fd, key_size, value_size, MAX_KEYS_PER_DRAIN)
        ]

    def drain(self) -> IntervalData:
        data = IntervalData()
        self._decode_events(data)
        counters_fd = self._loaded.maps["counters"][0]
        now = []
        for i in range(3):
            raw = self._bpf.lookup(counters_fd, _U32.pack(i), 8)
            now.append(_U64.unpack(raw)[0] if raw else 0)
        data.exec_count = now[0] - self._last_counters[0]
        data.exit_count = now[1] - self._last_counters[1]
        data.lost += now[2] - self._last_counters[2]
        self._last_counters = now
        for key, count in self._drain("retrans"):
            family, sport, dport, state, saddr, daddr = _CONN.unpack_from(key)
            conn = Connection(family, saddr, sport, daddr, dport, state)
            data.retransmits[conn] = data.retransmits.get(conn, 0) + count
        for key, count in self._drain("transitions"):
            pair = _PAIR.unpack_from(key)
            data.state_changes[pair] = data.state_changes.get(pair, 0) + count
        for key, count in self._drain("drops"):
            reason = _U32.unpack_from(key)[0]
            data.drops[reason] = data.drops.get(reason, 0) + count
        for key, count in self._drain("block_hist"):
            dev, slot = _DEV_SLOT.unpack_from(key)
            hist = data.block_latency.setdefault(dev, {})
            hist[slot] = hist.get(slot, 0) + count
        for key, count in self._drain("runq_hist"):
            slot = _U32.unpack_from(key)[0]
            data.runq_latency[slot] = data.runq_latency.get(slot, 0) + count
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ring.close()
        self._loaded.close()  # closing the attachments detaches the programs
