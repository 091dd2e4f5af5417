"""A small fake of the pynvml call boundary, for decoding tests without a GPU.

Only the functions the NVML source calls exist; constants and the error class are the real
ones from ``pynvml``, so an error raised here is exactly what the real binding raises.
Unsupported fields are modelled the way NVML reports them: NVMLError(NVML_ERROR_NOT_SUPPORTED).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-1111-2222-3333-444444444444"
    memory_total: int = 80 * 1024**3
    memory_used: int = 20 * 1024**3
    bar1_used: int = 64 * 1024**2
    util_gpu: int = 75
    temperature: int = 67
    power_mw: int = 350_000
    power_limit_mw: int = 700_000
    sm_mhz: int = 1980
    mem_mhz: int = 2619
    throttle_mask: int = 0
    pcie_gen: int = 5
    pcie_width: int = 16
    pcie_tx_kbs: int = 1000
    pcie_rx_kbs: int = 2000
    ecc: dict[int, int] | None = field(default_factory=lambda: {0: 12, 1: 1})
    retired: dict[int, list[int]] | None = field(default_factory=lambda: {0: [1, 2], 1: [3]})
    remapped: tuple[int, int, int, int] | None = (4, 1, 1, 0)
    nvlinks: dict[int, tuple[int, dict[int, int]]] | None = None
    """link -> (state, {counter: value}); None: NVLink not supported."""
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    xids: list[int] = field(default_factory=list)


def _not_supported() -> pynvml.NVMLError:
    return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


class FakeNvml:
    """Stands in for the ``pynvml`` module."""

    NVMLError = pynvml.NVMLError

    def __init__(self, gpus: list[FakeGpu], *, init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.calls: dict[str, int] = {}
        self.shutdown = False
        for name in dir(pynvml):
            if name.startswith(("NVML_", "nvmlEventType", "nvmlClocks")):
                setattr(self, name, getattr(pynvml, name))

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdown = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        return self.gpus[i]

    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        return h.name

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        return h.uuid

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu) -> Any:
        return SimpleNamespace(
            total=h.memory_total, used=h.memory_used, free=h.memory_total - h.memory_used
        )

    def nvmlDeviceGetBAR1MemoryInfo(self, h: FakeGpu) -> Any:
        return SimpleNamespace(bar1Total=256 * 1024**2, bar1Used=h.bar1_used, bar1Free=0)

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu) -> Any:
        return SimpleNamespace(gpu=h.util_gpu, memory=10)

    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return h.temperature

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        return h.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        return h.power_limit_mw

    def nvmlDeviceGetClockInfo(self, h: FakeGpu, clock: int) -> int:
        return h.sm_mhz if clock == pynvml.NVML_CLOCK_SM else h.mem_mhz

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeGpu) -> int:
        return h.throttle_mask

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: FakeGpu) -> int:
        return h.pcie_gen

    def nvmlDeviceGetCurrPcieLinkWidth(self, h: FakeGpu) -> int:
        return h.pcie_width

    def nvmlDeviceGetPcieThroughput(self, h: FakeGpu, counter: int) -> int:
        return h.pcie_tx_kbs if counter == pynvml.NVML_PCIE_UTIL_TX_BYTES else h.pcie_rx_kbs

    def nvmlDeviceGetTotalEccErrors(self, h: FakeGpu, error_type: int, counter: int) -> int:
        self._count("ecc")
        assert counter == pynvml.NVML_AGGREGATE_ECC
        if h.ecc is None:
            raise _not_supported()
        return h.ecc[error_type]

    def nvmlDeviceGetRetiredPages(self, h: FakeGpu, cause: int) -> list[int]:
        if h.retired is None:
            raise _not_supported()
        return h.retired[cause]

    def nvmlDeviceGetRemappedRows(self, h: FakeGpu) -> tuple[int, int, int, int]:
        if h.remapped is None:
            raise _not_supported()
        return h.remapped

    def nvmlDeviceGetNvLinkState(self, h: FakeGpu, link: int) -> int:
        self._count("nvlink_state")
        if h.nvlinks is None:
            raise _not_supported()
        if link not in h.nvlinks:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return h.nvlinks[link][0]

    def nvmlDeviceGetNvLinkErrorCounter(self, h: FakeGpu, link: int, counter: int) -> int:
        assert h.nvlinks is not None
        return h.nvlinks[link][1].get(counter, 0)

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeGpu) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in h.processes]

    def nvmlEventSetCreate(self) -> list[tuple[FakeGpu, int]]:
        return []

    def nvmlDeviceRegisterEvents(self, h: FakeGpu, types: int, event_set: list[Any]) -> None:
        assert types == pynvml.nvmlEventTypeXidCriticalError
        event_set.extend((h, xid) for xid in h.xids)
        h.xids = []

    def nvmlEventSetWait_v2(self, event_set: list[tuple[FakeGpu, int]], timeout_ms: int) -> Any:
        assert timeout_ms == 0
        if not event_set:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT)
        gpu, xid = event_set.pop(0)
        return SimpleNamespace(device=gpu, eventData=xid, eventType=8)

    def nvmlEventSetFree(self, event_set: Any) -> None:
        pass
