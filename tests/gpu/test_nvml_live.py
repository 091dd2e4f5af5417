"""The NVML source against a real GPU. Skips cleanly (naming NVML's error) where none exists.

What a real GPU must show: every device reports utilisation, memory, temperature, power and
clocks within physical bounds; memory used never exceeds total; inventory agrees with
`nvidia-smi`; a process that allocates GPU memory appears in the per-process figures.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sreagent.collector import Sampler, SamplerOptions
from sreagent.collector._nvml import NvmlSource
from sreagent.telemetry import Sample

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def nvml_source() -> NvmlSource:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        pytest.skip(f"no usable NVIDIA GPU: {err}")
    pynvml.nvmlShutdown()
    source = NvmlSource()
    yield source
    source.close()


def _by(samples: list[Sample], metric: str) -> dict[str, float]:
    return {s.entity: s.value for s in samples if s.metric == metric and not s.labels}


def test_every_gpu_reports_physical_figures(nvml_source: NvmlSource) -> None:
    assert nvml_source.capability().mode == "kernel"
    out = nvml_source.read(1)
    inventory = nvml_source.inventory()
    assert inventory, "NVML initialised but lists no GPU"
    for gpu in inventory:
        entity = f"gpu/{gpu.index}"
        assert 0 <= _by(out.samples, "gpu_utilisation_ratio")[entity] <= 1
        assert 0 <= _by(out.samples, "gpu_memory_used_ratio")[entity] <= 1
        assert 0 < _by(out.samples, "gpu_temperature_celsius")[entity] < 120
        assert 0 < _by(out.samples, "gpu_power_watts")[entity] < 2000
        assert _by(out.samples, "gpu_sm_clock_hertz")[entity] > 1e6
        assert gpu.memory_bytes > 1 << 30
        assert gpu.model
        throttle = [s for s in out.samples if s.metric == "gpu_throttled" and s.entity == entity]
        assert {s.labels["reason"] for s in throttle} >= {"sw_power_cap", "hw_slowdown"}


def test_inventory_agrees_with_nvidia_smi(nvml_source: NvmlSource) -> None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("nvidia-smi not installed")
    rows = (
        subprocess.run(
            [smi, "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        .stdout.strip()
        .splitlines()
    )
    expected = {int(r.split(",")[0]): (r.split(",")[1].strip(), int(r.split(",")[2])) for r in rows}
    got = {g.index: (g.uuid, g.memory_bytes // (1024 * 1024)) for g in nvml_source.inventory()}
    assert set(got) == set(expected)
    for index, (uuid, mib) in expected.items():
        assert got[index][0] == uuid
        assert abs(got[index][1] - mib) <= 1


def test_a_process_using_gpu_memory_is_seen(nvml_source: NvmlSource) -> None:
    torch = pytest.importorskip("torch", reason="torch allocates GPU memory for this check")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    import os

    block = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda:0")
    try:
        out = nvml_source.read(2)
        mine = [
            s
            for s in out.samples
            if s.metric == "gpu_process_memory_bytes" and s.labels.get("pid") == str(os.getpid())
        ]
        # Containers without host PID namespace see no per-process attribution: say so.
        if not mine:
            pytest.skip("NVML lists no per-process memory here (PID namespace or MIG)")
        assert mine[0].value >= 256 * 1024 * 1024
    finally:
        del block


def test_sampler_includes_gpus_in_inventory(nvml_source: NvmlSource) -> None:
    with Sampler(options=SamplerOptions(enabled=frozenset({"nvml", "inventory"}))) as sampler:
        out = sampler.sample(3)
        assert out.inventory is not None
        assert len(out.inventory.gpus) == len(nvml_source.inventory())
