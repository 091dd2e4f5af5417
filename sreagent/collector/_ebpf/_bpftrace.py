"""The bpftrace backend: needs no kernel headers (bpftrace resolves tracepoints through BTF).

One ``bpftrace -f json`` child runs the script below; a reader thread parses its JSON lines
(``printf`` records for exec/exit/OOM, ``map``/``hist`` prints of the per-interval maps) into
an :class:`IntervalData` that :meth:`BpftraceBackend.drain` hands over. The maps are printed
and cleared by bpftrace's own ``interval`` probe, so a collector interval gets whatever the
completed bpftrace intervals delivered (at most ``FLUSH_MS`` late).

Like the BCC programs, the script reads tracepoint arguments and builtins only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import threading
import time
from collections import deque
from typing import Any

from sreagent.collector._ebpf._summary import (
    AF_INET6,
    Connection,
    ExecRecord,
    ExitRecord,
    IntervalData,
    OomRecord,
)

FLUSH_MS = 500
START_TIMEOUT_S = 20.0

_HEADER = ""
MAP_KEYS_MAX = "16384"
"""Passed as BPFTRACE_MAP_KEYS_MAX (bpftrace 0.17 has no config block)."""
STRLEN = "200"
"""BPFTRACE_STRLEN: str() copies 64 bytes by default, too few for paths; 200 is 0.17's most."""

# name -> (tracepoints, text). printf fields are tab-separated with the free text last.
_PROBES: dict[str, tuple[tuple[str, ...], str]] = {
    "exec": (
        ("sched:sched_process_exec",),
        r"""
tracepoint:sched:sched_process_exec {
  @execs = count();
  printf("E\t%llu\t%d\t%d\t%s\t%s\n", nsecs, args->pid, uid, comm, str(args->filename));
}
""",
    ),
    "exit": (
        ("sched:sched_process_exit",),
        r"""
tracepoint:sched:sched_process_exit /pid == tid/ {
  @exits = count();
  printf("X\t%llu\t%d\t%s\n", nsecs, args->pid, args->comm);
}
""",
    ),
    "oom": (
        ("oom:mark_victim",),
        r"""
tracepoint:oom:mark_victim {
  printf("O\t%llu\t%d\n", nsecs, args->pid);
}
""",
    ),
    "tcp_retransmit": (
        ("tcp:tcp_retransmit_skb",),
        r"""
tracepoint:tcp:tcp_retransmit_skb {
  if (args->family == 2) {
    @retrans[args->family, ntop(args->saddr), args->sport, ntop(args->daddr), args->dport, args->state] = count();
  } else {
    @retrans[args->family, ntop(args->saddr_v6), args->sport, ntop(args->daddr_v6), args->dport, args->state] = count();
  }
}
""",
    ),
    "tcp_state": (
        ("sock:inet_sock_set_state",),
        r"""
tracepoint:sock:inet_sock_set_state /args->protocol == 6/ {
  @transitions[args->oldstate, args->newstate] = count();
}
""",
    ),
    "packet_drop": (
        ("skb:kfree_skb",),
        r"""
tracepoint:skb:kfree_skb {
  @drops[args->reason] = count();
}
""",
    ),
    "block_latency": (
        ("block:block_rq_issue", "block:block_rq_complete"),
        r"""
tracepoint:block:block_rq_issue {
  @block_start[args->dev, args->sector] = nsecs;
}
tracepoint:block:block_rq_complete /@block_start[args->dev, args->sector]/ {
  @block_hist[args->dev] = hist((nsecs - @block_start[args->dev, args->sector]) / 1000);
  delete(@block_start[args->dev, args->sector]);
}
""",
    ),
    "runqueue_latency": (
        ("sched:sched_wakeup", "sched:sched_wakeup_new", "sched:sched_switch"),
        r"""
tracepoint:sched:sched_wakeup, tracepoint:sched:sched_wakeup_new {
  @wakeup_ts[args->pid] = nsecs;
}
tracepoint:sched:sched_switch {
  if ((args->prev_state & 0xff) == 0) {
    @wakeup_ts[args->prev_pid] = nsecs;
  }
  if (@wakeup_ts[args->next_pid]) {
    @runq_hist = hist((nsecs - @wakeup_ts[args->next_pid]) / 1000);
    delete(@wakeup_ts[args->next_pid]);
  }
}
""",
    ),
}
# The interval probe comes last and says "R" each time: bpftrace's "attached_probes" record
# is printed BEFORE attaching, so the first "R" is the sign that the probes above are live.
# Kernels since 6.2 give mark_victim the victim's sizes (in kB), uid and comm.
_OOM_DETAILED = r"""
tracepoint:oom:mark_victim {
  printf("O\t%llu\t%d\t%lu\t%lu\t%u\t%s\n", nsecs, args->pid, args->total_vm, args->anon_rss,
         args->uid, str(args->comm));
}
"""
_FLUSH = """
interval:ms:{ms} {{
{prints}
  printf("R\\n");
}}
"""
_MAPS = {
    "exec": ["@execs"], "exit": ["@exits"], "tcp_retransmit": ["@retrans"],
    "tcp_state": ["@transitions"], "packet_drop": ["@drops"], "block_latency": ["@block_hist"],
    "runqueue_latency": ["@runq_hist"],
}  # fmt: skip


def build_script(
    available: set[str], *, oom_details: bool = False
) -> tuple[str, list[str], list[str]]:
    """The bpftrace script for the probes whose tracepoints all exist in ``available``.

    ``oom_details``: the running kernel's ``oom:mark_victim`` has total_vm, anon_rss, uid, comm.
    """
    parts = [_HEADER]
    used: list[str] = []
    left_out: list[str] = []
    for name, (tracepoints, text) in _PROBES.items():
        missing = [tp for tp in tracepoints if tp not in available]
        if missing:
            left_out.append(f"{name}: no tracepoint {', '.join(missing)}")
            continue
        parts.append(_OOM_DETAILED if name == "oom" and oom_details else text)
        used.append(name)
    prints = "\n".join(f"  print({m}); clear({m});" for n in used for m in _MAPS.get(n, []))
    parts.append(_FLUSH.format(ms=FLUSH_MS, prints=prints))
    return "".join(parts), used, left_out


def _bucket(low: int) -> int:
    # bpftrace's hist(): buckets [0,1), [1,2), [2,4)...; ours: log2 with 0 and 1 sharing 0.
    return max(0, low.bit_length() - 1)


def _address(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def apply_record(data: IntervalData, record: dict[str, Any], *, max_events: int) -> str | None:
    """Fold one bpftrace JSON record into ``data``; returns an error text for ``error`` lines."""
    kind = record.get("type")
    payload = record.get("data")
    if kind == "printf" and isinstance(payload, str):
        for line in payload.splitlines():
            _apply_printf(data, line, max_events=max_events)
    elif kind == "lost_events" and isinstance(payload, dict):
        data.lost += int(payload.get("events", 0))
    elif kind in ("map", "hist") and isinstance(payload, dict):
        for name, value in payload.items():
            _apply_map(data, name, value)
    elif kind == "error":
        return str(payload)
    return None


def _apply_printf(data: IntervalData, line: str, *, max_events: int) -> None:
    parts = line.split("\t")
    if parts[0] == "E" and len(parts) >= 6:
        if len(data.execs) < max_events:
            data.execs.append(
                ExecRecord(
                    int(parts[1]), int(parts[2]), int(parts[3]), parts[4], "\t".join(parts[5:])
                )
            )
        else:
            data.lost += 1
    elif parts[0] == "X" and len(parts) >= 4:
        if len(data.exits) < max_events:
            data.exits.append(ExitRecord(int(parts[1]), int(parts[2]), "\t".join(parts[3:])))
        else:
            data.lost += 1
    elif parts[0] == "O" and len(parts) >= 7:
        data.ooms.append(
            OomRecord(
                int(parts[1]),
                int(parts[2]),
                "\t".join(parts[6:]),
                int(parts[3]),
                int(parts[4]),
                int(parts[5]),
            )
        )
    elif parts[0] == "O" and len(parts) >= 3:
        data.ooms.append(OomRecord(int(parts[1]), int(parts[2]), ""))


def _apply_map(data: IntervalData, name: str, value: Any) -> None:
    if name == "@execs":
        data.exec_count += int(value)
    elif name == "@exits":
        data.exit_count += int(value)
    elif name == "@retrans" and isinstance(value, dict):
        for key, count in value.items():
            family, saddr, sport, daddr, dport, state = key.split(",")
            size = 16 if int(family) == AF_INET6 else 4
            conn = Connection(
                int(family),
                _address(saddr).ljust(size, b"\0"),
                int(sport),
                _address(daddr).ljust(size, b"\0"),
                int(dport),
                int(state),
            )
            data.retransmits[conn] = data.retransmits.get(conn, 0) + int(count)
    elif name == "@transitions" and isinstance(value, dict):
        for key, count in value.items():
            old, new = (int(x) for x in key.split(","))
            data.state_changes[(old, new)] = data.state_changes.get((old, new), 0) + int(count)
    elif name == "@drops" and isinstance(value, dict):
        for key, count in value.items():
            data.drops[int(key)] = data.drops.get(int(key), 0) + int(count)
    elif name == "@block_hist" and isinstance(value, dict):
        for dev, buckets in value.items():
            hist = data.block_latency.setdefault(int(dev), {})
            for b in buckets:
                slot = _bucket(int(b.get("min", 0)))
                hist[slot] = hist.get(slot, 0) + int(b["count"])
    elif name == "@runq_hist" and isinstance(value, list):
        for b in value:
            slot = _bucket(int(b.get("min", 0)))
            data.runq_latency[slot] = data.runq_latency.get(slot, 0) + int(b["count"])


class BpftraceBackend:
    """A running ``bpftrace -f json`` child and the thread that reads it."""

    name = "bpftrace"

    def __init__(
        self, script: str, used: list[str], *, max_events: int, binary: str | None = None
    ) -> None:
        path = binary or shutil.which("bpftrace")
        if path is None:
            raise RuntimeError("bpftrace is not installed (Debian package bpftrace)")
        self.used = used
        self._max_events = max_events
        self._lock = threading.Lock()
        self._pending = IntervalData()
        self._stderr: deque[str] = deque(maxlen=20)
        self._attached = threading.Event()
        self._errors: list[str] = []
        version = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        self.version = version.stdout.strip().removeprefix("bpftrace ").strip()
        self._proc = subprocess.Popen(
            [path, "-B", "none", "-f", "json", "-e", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env={**os.environ, "BPFTRACE_MAP_KEYS_MAX": MAP_KEYS_MAX, "BPFTRACE_STRLEN": STRLEN},
        )
        self._reader = threading.Thread(
            target=self._read_stdout, name="bpftrace-stdout", daemon=True
        )
        self._err_reader = threading.Thread(
            target=self._read_stderr, name="bpftrace-stderr", daemon=True
        )
        self._reader.start()
        self._err_reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._attached.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"bpftrace did not attach: {self.error_text()}")

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("type") == "printf" and record.get("data") == "R\n":
                self._attached.set()
                continue
            with self._lock:
                try:
                    error = apply_record(self._pending, record, max_events=self._max_events)
                except (ValueError, KeyError, TypeError):
                    self._pending.lost += 1
                    continue
            if error:
                self._errors.append(error)

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            if "RLIMIT_MEMLOCK" not in line:  # bpftrace 0.17's harmless warning
                self._stderr.append(line.strip())

    def error_text(self) -> str:
        text = "; ".join([*self._errors, *self._stderr][-3:])
        code = self._proc.poll()
        return f"{text or 'no output'}{f' (exit status {code})' if code is not None else ''}"

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def drain(self) -> IntervalData:
        with self._lock:
            data, self._pending = self._pending, IntervalData()
        return data

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
