"""The Sampler facade: scheduling, merging, failure isolation, shedding, option checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sreagent.collector import BUILTIN_SOURCES, SHED_ORDER, Sampler, SamplerOptions, SourceOutput
from sreagent.collector._common import capability, sample
from sreagent.errors import BadInput
from sreagent.telemetry import Event, SourceCapability
from tests.collector.fixture_tree import SECOND, T0, Tree, one


@dataclass
class Scripted:
    """A source whose reads follow a script: a value to emit, or an exception to raise."""

    name: str
    optional: bool = True
    script: list[object] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    closed: bool = False
    active: bool = True

    def capability(self) -> SourceCapability:
        return capability(self.name, "kernel", "scripted")

    def read(self, now_ns: int) -> SourceOutput:
        self.reads.append(now_ns)
        step = self.script.pop(0) if self.script else 1.0
        if isinstance(step, Exception):
            raise step
        out = SourceOutput(samples=[sample(now_ns, "collector_mode", "collector", float(step))])
        out.events.append(
            Event.model_construct(
                ts_ns=now_ns,
                kind="link_up",
                entity="nic/x",
                source=self.name,
                severity="info",
                message="",
                attributes={},
            )
        )
        return out

    def close(self) -> None:
        self.closed = True


def test_a_raising_source_is_reported_and_the_others_carry_on() -> None:
    bad = Scripted("bad", script=[RuntimeError("disk vanished"), 2.0])
    good = Scripted("good")
    sampler = Sampler(sources=[bad, good])
    out = sampler.sample(T0)
    assert [s.value for s in out.samples if s.metric == "collector_mode"] == [1.0]
    caps = {c.source: c for c in sampler.capabilities()}
    assert caps["bad"].mode == "off"
    assert "RuntimeError: disk vanished" in caps["bad"].reason
    assert caps["good"].mode == "kernel"
    errors = [s for s in out.samples if s.metric == "collector_source_errors_total"]
    assert one(errors, "collector_source_errors_total", "collector", source="bad") == 1
    # The next read succeeds: the source is back, the error count stays as a counter.
    out = sampler.sample(T0 + SECOND)
    assert sorted(s.value for s in out.samples if s.metric == "collector_mode") == [1.0, 2.0]
    assert {c.source: c.mode for c in sampler.capabilities()}["bad"] == "kernel"
    errors = [s for s in out.samples if s.metric == "collector_source_errors_total"]
    assert one(errors, "collector_source_errors_total", "collector", source="bad") == 1


def test_sources_on_slower_intervals_are_read_every_n_samples(tmp_path: Path) -> None:
    fast, slow = Scripted("fast"), Scripted("processes")
    sampler = Sampler(options=SamplerOptions(process_every=3), sources=[fast, slow])
    for i in range(7):
        sampler.sample(T0 + i * SECOND)
    assert len(fast.reads) == 7
    assert slow.reads == [T0, T0 + 3 * SECOND, T0 + 6 * SECOND]
    sampler.sample(T0 + 7 * SECOND, full=True)
    assert slow.reads[-1] == T0 + 7 * SECOND


def test_shedding_follows_the_documented_order_and_can_be_undone() -> None:
    names = ["cpu", "cgroup", "processes", "scrape", "taskstats", "sock_diag", "kmsg", "extra"]
    sources = [Scripted(n, optional=n not in ("cpu", "kmsg")) for n in names]
    sampler = Sampler(sources=sources)
    assert sampler.shed_order() == [
        "scrape",
        "taskstats",
        "processes",
        "sock_diag",
        "cgroup",
        "extra",
    ]
    assert sampler.shed_next() == "scrape"
    assert sampler.shed_next() == "taskstats"
    assert sources[4].active is False  # the taskstats helper learns it is shed
    out = sampler.sample(T0)
    assert sources[3].reads == [] and sources[4].reads == []
    assert {c.source: c.reason for c in sampler.capabilities() if c.mode == "off"} == {
        "scrape": "shed under CPU pressure",
        "taskstats": "shed under CPU pressure",
    }
    assert len(out.events) == 6
    with pytest.raises(BadInput, match="'cpu' is not optional"):
        sampler.shed(["cpu"])
    with pytest.raises(BadInput, match="no source named 'gpu'"):
        sampler.shed(["gpu"])
    assert sampler.restore(["taskstats"]) == ["taskstats"]
    assert sources[4].active is True
    assert sampler.shed_sources == ["scrape"]
    while sampler.shed_next():
        pass
    assert set(sampler.shed_sources) == {
        "cgroup",
        "processes",
        "scrape",
        "taskstats",
        "sock_diag",
        "extra",
    }
    assert sorted(sampler.restore()) == sorted(sampler.shed_order())
    assert "ebpf" in SHED_ORDER


def test_close_reaches_every_source_even_if_one_fails() -> None:
    class Broken(Scripted):
        def close(self) -> None:
            raise OSError("already closed")

    first, second = Broken("a"), Scripted("b")
    with Sampler(sources=[first, second]):
        pass
    assert second.closed


def test_extra_sources_join_the_builtin_ones(tmp_path: Path) -> None:
    tree = Tree(tmp_path, "debian12-vm-t0")
    extra = Scripted("kmsg", optional=False)
    sampler = Sampler(
        tree.roots, SamplerOptions(enabled=frozenset({"cpu", "memory"})), extra_sources=[extra]
    )
    assert sampler.source_names == ["cpu", "memory", "kmsg"]
    out = sampler.sample(T0)
    assert one(out.samples, "memory_total_bytes") == 24683656 * 1024
    assert extra.reads == [T0]
    assert set(sampler.source_cpu_seconds()) == {"cpu", "memory", "kmsg"}
    with pytest.raises(BadInput, match="share the name"):
        Sampler(
            tree.roots, SamplerOptions(enabled=frozenset({"cpu"})), extra_sources=[Scripted("cpu")]
        )


def test_rates_appear_from_the_second_sample_of_fixture_trees(tmp_path: Path) -> None:
    tree = Tree(tmp_path, "debian12-vm-t0")
    options = SamplerOptions(kernel_interfaces=False, disabled=frozenset({"nvml", "scrape"}))
    with Sampler(tree.roots, options) as sampler:
        caps = {c.source: c.mode for c in sampler.capabilities()}
        assert (
            caps["perf"] == caps["netlink"] == caps["sock_diag"] == caps["taskstats"] == "fallback"
        )
        first = sampler.sample(T0)
        assert not any(s.metric == "cpu_utilisation_ratio" for s in first.samples)
        assert first.inventory is not None and first.inventory.cpu_model == "AMD EPYC"
        tree.point("debian12-vm-t1")
        second = sampler.sample(T0 + SECOND)
        assert one(second.samples, "cpu_utilisation_ratio") == pytest.approx(301 / 303)
        assert one(second.samples, "disk_reads_per_second", "disk/vda") == 56
        assert second.inventory is first.inventory  # refreshed only every inventory_every
        assert {p.pid for p in second.processes} == set()  # processes run every 5th sample


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"process_every": 0}, "process_every must be at least 1"),
        ({"top_n": -1}, "top_n must not be negative"),
        ({"disabled": frozenset({"gpu"})}, "unknown source"),
        ({"enabled": frozenset({"cpu", "bogus"})}, "unknown source"),
    ],
)
def test_bad_options_are_refused_with_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        SamplerOptions(**kwargs)  # type: ignore[arg-type]


def test_builtin_names_are_stable() -> None:
    assert BUILTIN_SOURCES == (
        "cpu",
        "perf",
        "memory",
        "psi",
        "disk",
        "netlink",
        "tcp",
        "sock_diag",
        "cgroup",
        "taskstats",
        "processes",
        "nvml",
        "ib",
        "inventory",
        "scrape",
    )


def test_fast_sample_is_indistinguishable_from_a_validated_one() -> None:
    """The collector's trusted constructor must build exactly what pydantic builds."""
    from sreagent.telemetry import Sample

    fast = sample(T0, "pressure_some_ratio", "host", 0.25, {"resource": "io"})
    built = Sample.model_construct(
        ts_ns=T0, metric="pressure_some_ratio", entity="host", labels={"resource": "io"}, value=0.25
    )
    validated = Sample.model_validate(fast.model_dump())
    assert fast == built == validated
    for attr in (
        "__dict__",
        "__pydantic_fields_set__",
        "__pydantic_extra__",
        "__pydantic_private__",
    ):
        assert getattr(fast, attr) == getattr(validated, attr), attr
    assert fast.model_dump_json() == validated.model_dump_json()
    assert isinstance(fast.value, float) and sample(T0, "procs_running", "host", 3).value == 3.0
    with pytest.raises(Exception, match="frozen"):
        fast.value = 1.0  # type: ignore[misc]


def test_trusted_process_rows_are_indistinguishable_from_validated_ones(tmp_path: Path) -> None:
    from sreagent.collector._procs import ProcessSource
    from sreagent.telemetry import ProcessRow

    rows = ProcessSource(Tree(tmp_path, "debian12-vm-t0").roots).read(T0).processes
    assert rows
    for row in rows:
        validated = ProcessRow.model_validate(row.model_dump())
        assert row == validated
        assert list(row.__dict__) == list(ProcessRow.model_fields)
        for attr in (
            "__dict__",
            "__pydantic_fields_set__",
            "__pydantic_extra__",
            "__pydantic_private__",
        ):
            assert getattr(row, attr) == getattr(validated, attr), attr
        assert row.model_dump_json() == validated.model_dump_json()


@dataclass
class Counting(Scripted):
    """A scripted source that counts its capability checks and can change its answer."""

    checks: int = 0
    mode: str = "kernel"

    def capability(self) -> SourceCapability:
        self.checks += 1
        return capability(self.name, self.mode, f"check {self.checks}")  # type: ignore[arg-type]


def test_capability_checks_are_reused_between_reads_and_redone_when_due() -> None:
    src = Counting("src", script=[1.0, 1.0, RuntimeError("gone"), 1.0] + [1.0] * 20)
    sampler = Sampler(sources=[src], options=SamplerOptions(capability_every=3))
    assert sampler.capabilities()[0].reason == "check 1"  # before any read
    sampler.sample(T0)
    src.mode = "fallback"
    # after the first read the check runs again, then its answer is reused
    assert sampler.capabilities()[0].mode == "fallback"
    assert src.checks == 2
    sampler.capabilities()
    sampler.capabilities()
    assert src.checks == 2
    sampler.sample(T0 + SECOND)
    sampler.sample(T0 + 2 * SECOND)  # fails: reported as off with the error, whatever cached
    cap = sampler.capabilities()[0]
    assert cap.mode == "off" and "RuntimeError: gone" in cap.reason
    assert src.checks == 3  # the failure made the cached answer stale
    src.mode = "kernel"
    sampler.sample(T0 + 3 * SECOND)  # recovers: asked again
    assert sampler.capabilities()[0].mode == "kernel"
    assert src.checks == 4
    for n in range(4, 7):
        sampler.sample(T0 + n * SECOND)
    sampler.capabilities()
    assert src.checks == 5  # three reads later: due again


def test_capability_every_must_be_positive() -> None:
    with pytest.raises(BadInput, match="capability_every"):
        SamplerOptions(capability_every=0)
