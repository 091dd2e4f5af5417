"""The eBPF source's pure parts: tracefs format parsing, probe planning, bpftrace output,
histogram quantiles and the interval summary. No kernel, no root.

Format texts below were captured from this project's kernel (6.18) and shortened where a
table is long; the bpftrace lines are bpftrace 0.17 ``-f json`` output captured on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sreagent.collector._ebpf import EbpfSource
from sreagent.collector._ebpf._bcc import PROBES, plan_program, tracepoints_needed
from sreagent.collector._ebpf._bpftrace import apply_record, build_script
from sreagent.collector._ebpf._summary import (
    AF_INET,
    Connection,
    ExecRecord,
    ExitRecord,
    IntervalData,
    OomRecord,
    Summariser,
    decode_kernel_dev,
    log2_quantile_seconds,
)
from sreagent.collector._ebpf._tracefs import TracepointFormat, ensure_tracefs, parse_format
from sreagent.collector._source import Roots
from sreagent.errors import BadInput
from sreagent.telemetry.names import EVENT_KINDS, METRICS_BY_NAME

KFREE_SKB = b"""name: kfree_skb
ID: 2310
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;
\tfield:void * rx_sk;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned short protocol;\toffset:32;\tsize:2;\tsigned:0;
\tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;

print fmt: "skbaddr=%p rx_sk=%p protocol=%u location=%pS reason: %s", REC->skbaddr, REC->rx_sk, REC->protocol, REC->location, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 12, "NETFILTER_DROP" }, { 128, "MAX" })
"""
MARK_VICTIM = b"""name: mark_victim
ID: 609
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;
\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;
\tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;

print fmt: "pid=%d comm=%s", REC->pid, __get_str(comm)
"""
OLD_MARK_VICTIM = b"""name: mark_victim
ID: 500
format:
\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;

print fmt: "pid=%d", REC->pid
"""
SET_STATE_TAIL = (
    b', __print_symbolic(REC->oldstate, { 1, "TCP_ESTABLISHED" }, { 2, "TCP_SYN_SENT" }), '
    b'__print_symbolic(REC->newstate, { 1, "TCP_ESTABLISHED" }, { 7, "TCP_CLOSE" })\n'
)


def test_parse_format_fields_and_symbol_tables() -> None:
    fmt = parse_format(KFREE_SKB)
    assert fmt.name == "kfree_skb"
    assert fmt.fields == {
        "skbaddr": "void *",
        "location": "void *",
        "rx_sk": "void *",
        "protocol": "unsigned short",
        "reason": "enum skb_drop_reason",
    }
    assert fmt.symbols == {
        "reason": {2: "NOT_SPECIFIED", 3: "NO_SOCKET", 12: "NETFILTER_DROP", 128: "MAX"}
    }
    assert fmt.offsets["reason"] == (36, 4)
    victim = parse_format(MARK_VICTIM)
    assert victim.fields["comm"] == "__data_loc char[]"
    assert victim.fields["uid"] == "uid_t"
    state = parse_format(
        b"name: inet_sock_set_state\nformat:\n\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n"
        b'print fmt: "x"' + SET_STATE_TAIL
    )
    assert state.symbols["newstate"] == {1: "TCP_ESTABLISHED", 7: "TCP_CLOSE"}


def test_parse_format_rejects_text_without_a_name() -> None:
    with pytest.raises(BadInput, match="no 'name:' line"):
        parse_format(b"ID: 3\nformat:\n")


def _all_formats() -> dict[str, TracepointFormat | None]:
    """A kernel that has every tracepoint with every field the probes need."""
    formats: dict[str, TracepointFormat | None] = {}
    for tp in tracepoints_needed():
        fields = {f: "int" for _, name, needed, _ in PROBES if name == tp for f in needed}
        formats[tp] = TracepointFormat(name=tp.split(":")[1], fields=fields, symbols={})
    formats["oom:mark_victim"] = parse_format(MARK_VICTIM)
    formats["skb:kfree_skb"] = parse_format(KFREE_SKB)
    return formats


def test_plan_program_uses_what_the_kernel_has() -> None:
    program, used, left_out = plan_program(_all_formats())
    assert used == [
        "exec",
        "exit",
        "oom",
        "tcp_retransmit",
        "tcp_state",
        "packet_drop",
        "block_latency",
        "runqueue_latency",
    ]
    assert left_out == []
    assert "#define OOM_DETAILS 1" in program
    # The drop reason is read at the offset this kernel's format file gives.
    assert "(char *)ctx + 36)" in program
    # Tracepoint arguments and helpers only: no kernel struct is dereferenced.
    for forbidden in (
        "struct task_struct",
        "struct sock *",
        "struct sk_buff *",
        "bpf_probe_read_kernel(&t",
    ):
        assert forbidden not in program


def test_plan_program_leaves_out_missing_tracepoints_and_fields() -> None:
    formats = _all_formats()
    formats["skb:kfree_skb"] = TracepointFormat("kfree_skb", {"skbaddr": "void *"}, {})  # pre-5.17
    formats["block:block_rq_complete"] = None
    formats["oom:mark_victim"] = parse_format(OLD_MARK_VICTIM)
    program, used, left_out = plan_program(formats)
    assert "packet_drop" not in used and "block_latency" not in used
    assert "packet_drop: skb:kfree_skb lacks reason" in left_out
    assert "block_latency: no tracepoint block:block_rq_complete" in left_out
    assert "oom" in used and "#define OOM_DETAILS" not in program
    assert "TRACEPOINT_PROBE(skb, kfree_skb)" not in program


def test_bpftrace_script_for_available_tracepoints() -> None:
    script, used, left_out = build_script({"sched:sched_process_exec", "tcp:tcp_retransmit_skb"})
    assert used == ["exec", "tcp_retransmit"]
    assert "exit: no tracepoint sched:sched_process_exit" in left_out
    assert "print(@execs); clear(@execs);" in script and "print(@retrans)" in script
    assert "kprobe" not in script and "kfunc" not in script
    assert script.rstrip().endswith("}")


BPFTRACE_LINES = [
    '{"type": "printf", "data": "E\\t2142212380209\\t21329\\t0\\tsleep\\t/bin/sleep\\n"}',
    '{"type": "printf", "data": "X\\t2142223548900\\t21329\\tsleep\\n"}',
    '{"type": "printf", "data": "O\\t2142223548901\\t4242\\n"}',
    '{"type": "printf", "data": "O\\t2142223548902\\t4243\\t538316\\t65280\\t0\\tpython\\n"}',
    '{"type": "map", "data": {"@execs": 5}}',
    '{"type": "map", "data": {"@retrans": {"2,198.18.7.1,51944,198.18.7.2,38883,1": 100}}}',
    '{"type": "map", "data": {"@transitions": {"7,2": 8, "2,1": 8}}}',
    '{"type": "map", "data": {"@drops": {"3": 17}}}',
    '{"type": "hist", "data": {"@block_hist": {"266338304": [{"min": 4096, "max": 8191, "count": 84}, {"min": 8192, "max": 16383, "count": 36}]}}}',
    '{"type": "hist", "data": {"@runq_hist": [{"min": 0, "max": 0, "count": 3}, {"min": 1, "max": 1, "count": 2}, {"min": 16, "max": 31, "count": 5}]}}',
    '{"type": "lost_events", "data": {"events": 7}}',
]


def test_bpftrace_records_fold_into_interval_data() -> None:
    data = IntervalData()
    for line in BPFTRACE_LINES:
        assert apply_record(data, json.loads(line), max_events=10) is None
    assert data.execs == [ExecRecord(2142212380209, 21329, 0, "sleep", "/bin/sleep")]
    assert data.exits == [ExitRecord(2142223548900, 21329, "sleep")]
    assert data.ooms == [
        OomRecord(2142223548901, 4242, ""),
        OomRecord(2142223548902, 4243, "python", 538316, 65280, 0),
    ]
    assert data.exec_count == 5
    conn = Connection(AF_INET, bytes([198, 18, 7, 1]), 51944, bytes([198, 18, 7, 2]), 38883, 1)
    assert data.retransmits == {conn: 100}
    assert data.state_changes == {(7, 2): 8, (2, 1): 8}
    assert data.drops == {3: 17}
    assert data.block_latency == {266338304: {12: 84, 13: 36}}
    assert data.runq_latency == {0: 5, 4: 5}
    assert data.lost == 7
    assert apply_record(data, {"type": "error", "data": "boom"}, max_events=10) == "boom"


def test_event_caps_count_what_they_drop() -> None:
    data = IntervalData()
    line = json.loads(BPFTRACE_LINES[0])
    for _ in range(5):
        apply_record(data, line, max_events=3)
    assert len(data.execs) == 3 and data.lost == 2


@pytest.mark.parametrize(
    ("hist", "q", "expected"),
    [
        ({0: 10}, 0.5, 1e-6),  # bucket 0 spans [0, 2) us: the median is its middle
        ({3: 4}, 0.5, 12e-6),  # [8, 16) us
        ({3: 4}, 1.0, 16e-6),
        ({0: 50, 10: 50}, 0.99, (1024 + 1024 * 0.98) / 1e6),
    ],
)
def test_log2_quantiles(hist: dict[int, int], q: float, expected: float) -> None:
    assert log2_quantile_seconds(hist, q) == pytest.approx(expected)


def test_log2_quantile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        log2_quantile_seconds({}, 0.5)


def test_kernel_dev_t_decoding() -> None:
    assert decode_kernel_dev(266338304) == (254, 0)  # vda on this machine
    assert decode_kernel_dev((8 << 20) | 17) == (8, 17)


def _interval() -> IntervalData:
    data = IntervalData(exec_count=4, exit_count=2, lost=1)
    data.execs.append(ExecRecord(9_000_000_000, 77, 1000, "sh", "/bin/sh"))
    data.exits.append(ExitRecord(9_500_000_000, 77, "sh"))
    data.ooms.append(OomRecord(9_600_000_000, 88, "hog", 1024, 512, 0))
    for i in range(5):
        conn = Connection(AF_INET, bytes([10, 0, 0, 1]), 1000 + i, bytes([10, 0, 0, 2]), 443, 1)
        data.retransmits[conn] = 10 - i
    data.state_changes[(2, 1)] = 3
    data.drops[3] = 20
    data.drops[99] = 1
    data.block_latency[(8 << 20) | 0] = {4: 10}
    data.runq_latency = {2: 100}
    return data


def test_summary_names_values_and_caps() -> None:
    summariser = Summariser(
        disk_name=lambda dev: {8 << 20: "sda"}[dev],
        drop_reasons={3: "NO_SOCKET"},
        max_connection_events=3,
    )
    data = _interval()
    out = summariser.summarise(
        data, now_ns=20_000_000_000, mono_now_ns=10_000_000_000, elapsed_s=2.0, lost_total=4
    )
    for event in out.events:
        assert event.kind in EVENT_KINDS and event.source == "ebpf"
    for sample in out.samples:
        assert sample.metric in METRICS_BY_NAME
    execs = [e for e in out.events if e.kind == "process_exec"]
    assert execs[0].ts_ns == 19_000_000_000  # one second before "now" on the monotonic clock
    assert execs[0].attributes == {"comm": "sh", "filename": "/bin/sh", "pid": "77", "uid": "1000"}
    oom = next(e for e in out.events if e.kind == "oom_kill")
    assert (oom.entity, oom.severity, oom.attributes["anon_rss_kb"]) == (
        "process/88",
        "error",
        "512",
    )
    retrans = [e for e in out.events if e.kind == "tcp_retransmit"]
    assert [e.attributes["count"] for e in retrans] == ["10", "9", "8"]  # the worst three
    assert (
        retrans[0].attributes["saddr"] == "10.0.0.1"
        and retrans[0].attributes["state"] == "ESTABLISHED"
    )
    assert data.lost == 1 + 2  # the two connections beyond the cap
    states = [e.attributes for e in out.events if e.kind == "tcp_state_change"]
    assert states == [{"count": "3", "from": "SYN_SENT", "to": "ESTABLISHED"}]
    drops = {
        s.labels["reason"]: s.value for s in out.samples if s.metric == "packet_drops_per_second"
    }
    assert drops == {"NO_SOCKET": 10.0, "99": 0.5}  # an unknown reason keeps its number
    disk = {s.labels["quantile"]: s.value for s in out.samples if s.entity == "disk/sda"}
    assert disk["0.5"] == pytest.approx(24e-6)  # [16, 32) us, middle
    rates = {s.metric: s.value for s in out.samples if s.metric.startswith("process_")}
    assert rates == {"process_execs_per_second": 2.0, "process_exits_per_second": 1.0}
    lost = [s.value for s in out.samples if s.metric == "collector_ebpf_lost_events_total"]
    assert lost == [4 + 3]


def test_tracefs_missing_and_not_mountable(tmp_path: Path) -> None:
    assert "mounting it is not allowed" in ensure_tracefs(tmp_path, may_mount=False)
    (tmp_path / "kernel/tracing/events").mkdir(parents=True)
    assert ensure_tracefs(tmp_path, may_mount=False) == ""


def test_source_is_off_with_the_reason_when_tracefs_is_missing(tmp_path: Path) -> None:
    source = EbpfSource(Roots(sys=tmp_path), backends=["bcc"], mount_tracefs=False)
    try:
        cap = source.capability()
        assert cap.mode == "off"
        assert f"tracefs is not mounted at {tmp_path}/kernel/tracing" in cap.reason
        assert "bcc: no usable tracepoint" in cap.reason
        assert source.read(1).events == []
    finally:
        source.close()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown eBPF backend"):
        EbpfSource(backends=["kprobe"])
