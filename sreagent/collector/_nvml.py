"""GPU source through NVML (``nvidia-ml-py``, imported as ``pynvml``).

The NVML module is injected (``nvml=``) so the decoding can be tested with a small fake bound
at the pynvml call boundary; by default it is the real ``pynvml``. Without a GPU or driver
``nvmlInit`` fails and the mode is ``off`` with NVML's own error text. A field a GPU does not
support (NVML_ERROR_NOT_SUPPORTED: ECC on consumer boards, NVLink on PCIe cards) is skipped
for that GPU from then on instead of being retried every interval.

Xid errors arrive through an NVML event set (nvmlEventTypeXidCriticalError) polled with a
zero timeout each interval; they become ``gpu_xid`` events with the code as attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

from sreagent.collector._common import capability, row
from sreagent.collector._source import SampleRow, SourceOutput
from sreagent.telemetry import Event, GpuInfo, SourceCapability

THROTTLE_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
"""nvmlClocksEventReason* bits (nvml.h). Every known bit is reported each interval, 0 or 1, so
a reason that clears is visible as a 0 rather than as a missing series."""
MAX_EVENTS_PER_READ = 64


def decode_throttle_reasons(mask: int) -> dict[str, bool]:
    """Each known reason -> active; unknown set bits are reported as ``other``."""
    out = {name: bool(mask & bit) for bit, name in THROTTLE_REASONS.items()}
    known = sum(THROTTLE_REASONS)
    out["other"] = bool(mask & ~known)
    return out


def _default_nvml() -> ModuleType:
    import pynvml

    module: ModuleType = pynvml
    return module


class NvmlSource:
    """``nvml``: per-GPU utilisation, memory, power, clocks, throttling, ECC, PCIe, NVLink."""

    name = "nvml"
    optional = False

    def __init__(self, *, nvml: Any = None, max_nvlinks: int | None = None) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._unsupported: set[tuple[int, str]] = set()
        self._events: Any = None
        self._reason = ""
        try:
            module = nvml if nvml is not None else _default_nvml()
        except ImportError as err:
            self._reason = f"nvidia-ml-py not importable: {err}"
            return
        try:
            module.nvmlInit()
        except module.NVMLError as err:
            self._reason = f"nvmlInit: {err}"
            return
        self._nvml = module
        self._max_nvlinks = max_nvlinks if max_nvlinks is not None else module.NVML_NVLINK_MAX_LINKS
        try:
            count = module.nvmlDeviceGetCount()
            self._handles = [module.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._reason = f"NVML, {count} GPU(s)"
        except module.NVMLError as err:
            self._reason = f"NVML device enumeration: {err}"
        self._register_xid_events()

    def _register_xid_events(self) -> None:
        nvml = self._nvml
        try:
            self._events = nvml.nvmlEventSetCreate()
            for handle in self._handles:
                nvml.nvmlDeviceRegisterEvents(
                    handle, nvml.nvmlEventTypeXidCriticalError, self._events
                )
        except nvml.NVMLError as err:
            self._reason += f"; Xid events unavailable: {err}"
            self._events = None

    def capability(self) -> SourceCapability:
        if self._nvml is None:
            return capability(self.name, "off", self._reason)
        return capability(self.name, "kernel", self._reason)

    def _get(self, index: int, field: str, call: Callable[[], Any]) -> Any:
        """One NVML call; None when the GPU does not support it (remembered) or it failed."""
        if (index, field) in self._unsupported:
            return None
        nvml = self._nvml
        try:
            return call()
        except nvml.NVMLError as err:
            if getattr(err, "value", None) in (
                nvml.NVML_ERROR_NOT_SUPPORTED,
                nvml.NVML_ERROR_FUNCTION_NOT_FOUND,
            ):
                self._unsupported.add((index, field))
            return None

    def inventory(self) -> list[GpuInfo]:
        if self._nvml is None:
            return []
        nvml = self._nvml
        out = []
        for i, h in enumerate(self._handles):
            name = self._get(i, "name", partial(nvml.nvmlDeviceGetName, h))
            uuid = self._get(i, "uuid", partial(nvml.nvmlDeviceGetUUID, h))
            mem = self._get(i, "memory", partial(nvml.nvmlDeviceGetMemoryInfo, h))
            cap = self._get(i, "power_limit", partial(nvml.nvmlDeviceGetEnforcedPowerLimit, h))
            out.append(
                GpuInfo(
                    index=i,
                    uuid=_text(uuid),
                    model=_text(name),
                    memory_bytes=int(mem.total) if mem is not None else 0,
                    power_cap_watts=cap / 1000 if cap is not None else None,
                )
            )
        return out

    def read(self, now_ns: int) -> SourceOutput:
        if self._nvml is None:
            return SourceOutput()
        out: list[SampleRow] = []
        for i, h in enumerate(self._handles):
            out.extend(self._device_samples(now_ns, i, h))
        return SourceOutput(rows=out, events=self._xid_events(now_ns))

    def _device_samples(self, now_ns: int, i: int, h: Any) -> list[SampleRow]:
        nvml = self._nvml
        entity = f"gpu/{i}"
        out: list[SampleRow] = []

        def put(metric: str, value: float | None, labels: dict[str, str] | None = None) -> None:
            if value is not None:
                out.append(row(now_ns, metric, entity, value, labels))

        util = self._get(i, "util", partial(nvml.nvmlDeviceGetUtilizationRates, h))
        put("gpu_utilisation_ratio", util.gpu / 100 if util is not None else None)
        mem = self._get(i, "memory", partial(nvml.nvmlDeviceGetMemoryInfo, h))
        if mem is not None:
            put("gpu_memory_used_bytes", mem.used)
            put("gpu_memory_used_ratio", mem.used / mem.total if mem.total else None)
        bar1 = self._get(i, "bar1", partial(nvml.nvmlDeviceGetBAR1MemoryInfo, h))
        put("gpu_bar1_used_bytes", bar1.bar1Used if bar1 is not None else None)
        put(
            "gpu_temperature_celsius",
            self._get(
                i, "temp", partial(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU)
            ),
        )
        power = self._get(i, "power", partial(nvml.nvmlDeviceGetPowerUsage, h))
        put("gpu_power_watts", power / 1000 if power is not None else None)
        limit = self._get(i, "power_limit", partial(nvml.nvmlDeviceGetEnforcedPowerLimit, h))
        put("gpu_power_limit_watts", limit / 1000 if limit is not None else None)
        sm = self._get(i, "sm_clock", partial(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM))
        put("gpu_sm_clock_hertz", sm * 1e6 if sm is not None else None)
        memclk = self._get(
            i, "mem_clock", partial(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_MEM)
        )
        put("gpu_memory_clock_hertz", memclk * 1e6 if memclk is not None else None)
        # "ClocksEventReasons" is the current name; older bindings only have "ThrottleReasons".
        reasons = (
            getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
            or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        )
        mask = self._get(i, "throttle", partial(reasons, h))
        if mask is not None:
            for reason, active in decode_throttle_reasons(int(mask)).items():
                put("gpu_throttled", 1.0 if active else 0.0, {"reason": reason})
        put(
            "gpu_pcie_link_generation",
            self._get(i, "pcie_gen", partial(nvml.nvmlDeviceGetCurrPcieLinkGeneration, h)),
        )
        put(
            "gpu_pcie_link_width",
            self._get(i, "pcie_width", partial(nvml.nvmlDeviceGetCurrPcieLinkWidth, h)),
        )
        for direction, counter in (
            ("transmit", nvml.NVML_PCIE_UTIL_TX_BYTES),
            ("receive", nvml.NVML_PCIE_UTIL_RX_BYTES),
        ):
            kbs = self._get(
                i, f"pcie_{direction}", partial(nvml.nvmlDeviceGetPcieThroughput, h, counter)
            )
            # NVML reports KB/s over a 20 ms window (nvml.h: nvmlDeviceGetPcieThroughput).
            put(
                "gpu_pcie_bytes_per_second",
                kbs * 1024 if kbs is not None else None,
                {"direction": direction},
            )
        for kind, error_type in (
            ("corrected", nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
            ("uncorrected", nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
        ):
            count = self._get(
                i,
                f"ecc_{kind}",
                partial(nvml.nvmlDeviceGetTotalEccErrors, h, error_type, nvml.NVML_AGGREGATE_ECC),
            )
            put("gpu_ecc_errors_total", count, {"type": kind})
        for cause, code in (
            ("multiple_single_bit", nvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
            ("double_bit", nvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR),
        ):
            pages = self._get(
                i, f"retired_{cause}", partial(nvml.nvmlDeviceGetRetiredPages, h, code)
            )
            put(
                "gpu_retired_pages_total",
                len(pages) if pages is not None else None,
                {"cause": cause},
            )
        rows = self._get(i, "remapped", partial(nvml.nvmlDeviceGetRemappedRows, h))
        if rows is not None:
            corrected, uncorrected, pending, _failure = rows
            put("gpu_remapped_rows_total", corrected, {"cause": "corrected"})
            put("gpu_remapped_rows_total", uncorrected, {"cause": "uncorrected"})
            put("gpu_remapped_rows_pending", 1.0 if pending else 0.0)
        out.extend(self._nvlink_samples(now_ns, i, h, entity))
        procs = self._get(i, "processes", partial(nvml.nvmlDeviceGetComputeRunningProcesses, h))
        for proc in procs or []:
            used = getattr(proc, "usedGpuMemory", None)
            if used is not None:  # None when the driver cannot attribute memory (MIG, WSL)
                put("gpu_process_memory_bytes", used, {"pid": str(proc.pid)})
        return out

    def _nvlink_samples(self, now_ns: int, i: int, h: Any, entity: str) -> list[SampleRow]:
        nvml = self._nvml
        if (i, "nvlink") in self._unsupported:
            return []
        out = []
        active = 0
        errors = (
            ("replay", nvml.NVML_NVLINK_ERROR_DL_REPLAY),
            ("recovery", nvml.NVML_NVLINK_ERROR_DL_RECOVERY),
            ("crc_flit", nvml.NVML_NVLINK_ERROR_DL_CRC_FLIT),
            ("crc_data", nvml.NVML_NVLINK_ERROR_DL_CRC_DATA),
        )
        for link in range(self._max_nvlinks):
            try:
                state = nvml.nvmlDeviceGetNvLinkState(h, link)
            except nvml.NVMLError as err:
                if link == 0 and getattr(err, "value", None) == nvml.NVML_ERROR_NOT_SUPPORTED:
                    self._unsupported.add((i, "nvlink"))
                    return []
                continue  # links beyond the ones this GPU has answer INVALID_ARGUMENT
            if state != nvml.NVML_FEATURE_ENABLED:
                continue
            active += 1
            for kind, counter in errors:
                try:
                    value = nvml.nvmlDeviceGetNvLinkErrorCounter(h, link, counter)
                except nvml.NVMLError:
                    continue
                out.append(
                    row(
                        now_ns,
                        "gpu_nvlink_errors_total",
                        entity,
                        value,
                        {"link": str(link), "type": kind},
                    )
                )
        out.append(row(now_ns, "gpu_nvlink_active_links", entity, active))
        return out

    def _xid_events(self, now_ns: int) -> list[Event]:
        if self._events is None:
            return []
        nvml = self._nvml
        out: list[Event] = []
        for _ in range(MAX_EVENTS_PER_READ):
            try:
                data = nvml.nvmlEventSetWait_v2(self._events, 0)
            except nvml.NVMLError:
                break  # NVML_ERROR_TIMEOUT: no event pending
            index = next((k for k, h in enumerate(self._handles) if h == data.device), None)
            xid = int(data.eventData)
            out.append(
                Event.model_construct(
                    ts_ns=now_ns,
                    kind="gpu_xid",
                    entity=f"gpu/{index}" if index is not None else "gpu",
                    source=self.name,
                    severity="error",
                    message=f"NVIDIA Xid {xid}",
                    attributes={"xid": str(xid)},
                )
            )
        return out

    def close(self) -> None:
        if self._nvml is not None:
            try:
                if self._events is not None:
                    self._nvml.nvmlEventSetFree(self._events)
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass
            self._nvml = None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")[:128]
    return str(value)[:128]
