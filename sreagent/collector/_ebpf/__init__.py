"""The eBPF source: tracepoint programs, summarised per interval into samples and events.

Tracepoints only (kprobes and fentry are off on hardened kernels, this project's included):

==================  =========================================  ===============================
probe               tracepoints                                output
==================  =========================================  ===============================
exec                sched:sched_process_exec                   ``process_exec`` events, execs/s
exit                sched:sched_process_exit                   ``process_exit`` events, exits/s
oom                 oom:mark_victim                            ``oom_kill`` events
tcp_retransmit      tcp:tcp_retransmit_skb                     ``tcp_retransmit`` per connection
tcp_state           sock:inet_sock_set_state                   ``tcp_state_change`` per pair
packet_drop         skb:kfree_skb (``reason``)                 ``packet_drop`` + drops/s by reason
block_latency       block:block_rq_issue/complete              disk latency quantiles
runqueue_latency    sched:sched_wakeup(_new)/sched_switch      run-queue latency quantiles
==================  =========================================  ===============================

Backends, tried in order: BCC (``python3-bpfcc``; needs kernel headers, see
scripts/setup-bcc-headers.sh; compiled in a short-lived child so LLVM never maps into the
collector, ``_loader.py``) and bpftrace (needs none: BTF). Both read tracepoint arguments
only. Where neither loads the mode is ``off`` and the reason quotes each backend's error.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence

from sreagent.collector._ebpf._bcc import BccBackend, plan_program, tracepoints_needed
from sreagent.collector._ebpf._bpftrace import BpftraceBackend, build_script
from sreagent.collector._ebpf._summary import (
    TCP_STATES,
    Summariser,
    decode_kernel_dev,
)
from sreagent.collector._ebpf._tracefs import (
    TracepointFormat,
    bpf_syscall_error,
    ensure_tracefs,
    read_format,
)
from sreagent.collector._source import Roots, SourceOutput
from sreagent.telemetry import SourceCapability

__all__ = ["BACKENDS", "EbpfSource", "ebpf_source"]

BACKENDS = ("bcc", "bpftrace")
SOURCE_NAME = "ebpf"


class EbpfSource:
    """Kernel activity from eBPF tracepoint programs (mode ``kernel`` or ``off``)."""

    name = SOURCE_NAME
    optional = True

    def __init__(
        self,
        roots: Roots | None = None,
        *,
        backends: Sequence[str] = BACKENDS,
        mount_tracefs: bool = True,
        max_events_per_interval: int = 256,
        max_connection_events: int = 100,
    ) -> None:
        self._roots = roots or Roots()
        self._backend: BccBackend | BpftraceBackend | None = None
        self._lost_total = 0
        self._last_now_ns: int | None = None
        self._started_mono = time.monotonic_ns()
        self._dev_names: dict[int, str] = {}
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            raise ValueError(f"unknown eBPF backend(s) {unknown}; choose from {list(BACKENDS)}")
        self._capability = self._start(list(backends), mount_tracefs, max_events_per_interval)
        self._summariser = Summariser(
            disk_name=self._disk_name,
            drop_reasons=self._symbols.get("drop", {}),
            tcp_states=self._symbols.get("tcp", dict(TCP_STATES)),
            max_connection_events=max_connection_events,
        )

    # -- start-up -------------------------------------------------------------------------

    def _formats(self) -> tuple[dict[str, TracepointFormat | None], str]:
        formats: dict[str, TracepointFormat | None] = {}
        for tp in dict.fromkeys(tracepoints_needed()):
            category, event = tp.split(":")
            try:
                formats[tp] = read_format(self._roots.sys, category, event)
            except PermissionError as err:
                return {}, f"cannot read tracepoint formats: {err}"
        return formats, ""

    def _start(self, backends: list[str], may_mount: bool, max_events: int) -> SourceCapability:
        self._symbols: dict[str, dict[int, str]] = {}
        try:
            tracefs_problem = ensure_tracefs(
                self._roots.sys, may_mount=may_mount and os.geteuid() == 0
            )
        except PermissionError as err:
            tracefs_problem = f"tracefs not accessible: {err}"
        formats, format_problem = self._formats() if not tracefs_problem else ({}, "")
        problems = [p for p in (tracefs_problem, format_problem) if p]
        drop_fmt = formats.get("skb:kfree_skb")
        if drop_fmt is not None:
            self._symbols["drop"] = drop_fmt.symbols.get("reason", {})
        state_fmt = formats.get("sock:inet_sock_set_state")
        if state_fmt is not None and state_fmt.symbols.get("newstate"):
            self._symbols["tcp"] = {
                k: v.removeprefix("TCP_") for k, v in state_fmt.symbols["newstate"].items()
            }
        errors: list[str] = []
        for name in backends:
            try:
                if name == "bcc":
                    program, used, left_out = plan_program(formats)
                    if not used:
                        why = "see above" if problems else "; ".join(left_out)
                        raise RuntimeError(f"no usable tracepoint ({why})")
                    bcc_backend = BccBackend(program, used, max_events=max_events)
                    detail = f"bcc {bcc_backend.version}, {bcc_backend.headers}; tracepoint arguments only"
                    backend: BccBackend | BpftraceBackend = bcc_backend
                else:
                    available = {tp for tp, fmt in formats.items() if fmt is not None}
                    if problems and not available:
                        # bpftrace reads tracefs itself; let it report its own error too.
                        available = set(tracepoints_needed())
                    victim = formats.get("oom:mark_victim")
                    details = (
                        victim is not None
                        and {"total_vm", "anon_rss", "uid", "comm"} <= victim.fields.keys()
                    )
                    script, used, left_out = build_script(available, oom_details=details)
                    backend = BpftraceBackend(script, used, max_events=max_events)
                    detail = f"bpftrace {backend.version} (BTF, no headers)"
            except (RuntimeError, OSError) as err:
                errors.append(f"{name}: {err}")
                continue
            self._backend = backend
            reason = f"backend {detail}; probes: {', '.join(used)}"
            if left_out:
                reason += f"; left out: {'; '.join(left_out)}"
            if errors:
                reason += f"; not used: {'; '.join(errors)}"
            return SourceCapability(source=self.name, mode="kernel", reason=reason)
        bpf_error = bpf_syscall_error()
        reasons = [*problems, *([bpf_error] if bpf_error else []), *errors]
        return SourceCapability(source=self.name, mode="off", reason="; ".join(reasons))

    # -- reading --------------------------------------------------------------------------

    def _disk_name(self, dev: int) -> str:
        if dev not in self._dev_names:
            major, minor = decode_kernel_dev(dev)
            name = f"{major}:{minor}"
            with contextlib.suppress(OSError):
                for line in (
                    (self._roots.sys / "dev/block" / name / "uevent").read_text().splitlines()
                ):
                    if line.startswith("DEVNAME="):
                        name = line.split("=", 1)[1]
            self._dev_names[dev] = name
        return self._dev_names[dev]

    def capability(self) -> SourceCapability:
        return self._capability

    @property
    def backend_name(self) -> str | None:
        return self._backend.name if self._backend else None

    def read(self, now_ns: int) -> SourceOutput:
        backend = self._backend
        if backend is None:
            return SourceOutput()
        if isinstance(backend, BpftraceBackend) and not backend.alive:
            self._capability = SourceCapability(
                source=self.name, mode="off", reason=f"bpftrace exited: {backend.error_text()}"
            )
            self.close()
            return SourceOutput()
        data = backend.drain()
        mono_now = time.monotonic_ns()
        if self._last_now_ns is None:
            elapsed_s = (mono_now - self._started_mono) / 1e9
        else:
            elapsed_s = (now_ns - self._last_now_ns) / 1e9
        self._last_now_ns = now_ns
        out = self._summariser.summarise(data, now_ns, mono_now, elapsed_s, self._lost_total)
        self._lost_total += data.lost
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def ebpf_source(
    roots: Roots | None = None, *, backends: Sequence[str] = BACKENDS, mount_tracefs: bool = True
) -> EbpfSource:
    """The eBPF source with its default caps; ``backends`` in order of preference."""
    return EbpfSource(roots, backends=backends, mount_tracefs=mount_tracefs)
