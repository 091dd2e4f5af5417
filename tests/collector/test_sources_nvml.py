"""NVML decoding against a fake bound at the pynvml call boundary (no GPU here).

The live counterpart is tests/gpu/, which runs only where a GPU and driver exist.
"""

from __future__ import annotations

import pynvml

from sreagent.collector._nvml import NvmlSource, decode_throttle_reasons
from tests.collector.fake_nvml import FakeGpu, FakeNvml
from tests.collector.fixture_tree import T0, absent, one


def test_device_figures_are_converted_to_base_units() -> None:
    nvml = FakeNvml([FakeGpu()])
    source = NvmlSource(nvml=nvml)
    assert source.capability().mode == "kernel"
    assert source.capability().reason.startswith("NVML, 1 GPU(s)")
    s = source.read(T0).samples
    assert one(s, "gpu_utilisation_ratio", "gpu/0") == 0.75
    assert one(s, "gpu_memory_used_bytes", "gpu/0") == 20 * 1024**3
    assert one(s, "gpu_memory_used_ratio", "gpu/0") == 0.25
    assert one(s, "gpu_bar1_used_bytes", "gpu/0") == 64 * 1024**2
    assert one(s, "gpu_power_watts", "gpu/0") == 350.0  # mW -> W
    assert one(s, "gpu_power_limit_watts", "gpu/0") == 700.0
    assert one(s, "gpu_sm_clock_hertz", "gpu/0") == 1980e6  # MHz -> Hz
    assert one(s, "gpu_memory_clock_hertz", "gpu/0") == 2619e6
    assert one(s, "gpu_temperature_celsius", "gpu/0") == 67
    assert one(s, "gpu_pcie_link_generation", "gpu/0") == 5
    assert one(s, "gpu_pcie_link_width", "gpu/0") == 16
    assert one(s, "gpu_pcie_bytes_per_second", "gpu/0", direction="transmit") == 1000 * 1024
    assert one(s, "gpu_pcie_bytes_per_second", "gpu/0", direction="receive") == 2000 * 1024
    assert one(s, "gpu_ecc_errors_total", "gpu/0", type="corrected") == 12
    assert one(s, "gpu_ecc_errors_total", "gpu/0", type="uncorrected") == 1
    assert one(s, "gpu_retired_pages_total", "gpu/0", cause="multiple_single_bit") == 2
    assert one(s, "gpu_retired_pages_total", "gpu/0", cause="double_bit") == 1
    assert one(s, "gpu_remapped_rows_total", "gpu/0", cause="corrected") == 4
    assert one(s, "gpu_remapped_rows_total", "gpu/0", cause="uncorrected") == 1
    assert one(s, "gpu_remapped_rows_pending", "gpu/0") == 1


def test_throttle_reasons_are_decoded_bit_by_bit() -> None:
    mask = pynvml.nvmlClocksEventReasonSwPowerCap | pynvml.nvmlClocksEventReasonHwThermalSlowdown
    decoded = decode_throttle_reasons(mask)
    assert {k for k, v in decoded.items() if v} == {"sw_power_cap", "hw_thermal_slowdown"}
    assert decode_throttle_reasons(0x1 | 0x4000)["other"] is True
    source = NvmlSource(nvml=FakeNvml([FakeGpu(throttle_mask=mask)]))
    s = source.read(T0).samples
    assert one(s, "gpu_throttled", "gpu/0", reason="sw_power_cap") == 1
    assert one(s, "gpu_throttled", "gpu/0", reason="hw_thermal_slowdown") == 1
    assert one(s, "gpu_throttled", "gpu/0", reason="gpu_idle") == 0  # cleared reasons read 0


def test_unsupported_fields_are_skipped_and_not_retried() -> None:
    gpu = FakeGpu(ecc=None, retired=None, remapped=None, nvlinks=None)
    nvml = FakeNvml([gpu])
    source = NvmlSource(nvml=nvml)
    first = source.read(T0).samples
    source.read(T0 + 1)
    assert absent(first, "gpu_ecc_errors_total")
    assert absent(first, "gpu_remapped_rows_total")
    assert absent(first, "gpu_nvlink_active_links")
    assert one(first, "gpu_utilisation_ratio", "gpu/0") == 0.75
    # Two error types asked once each; the second read does not ask again.
    assert nvml.calls["ecc"] == 2
    assert nvml.calls["nvlink_state"] == 1


def test_nvlink_state_and_error_counters() -> None:
    replay, crc = pynvml.NVML_NVLINK_ERROR_DL_REPLAY, pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT
    links = {0: (1, {replay: 3, crc: 9}), 1: (1, {}), 2: (0, {replay: 100})}
    source = NvmlSource(nvml=FakeNvml([FakeGpu(nvlinks=links)]), max_nvlinks=4)
    s = source.read(T0).samples
    assert one(s, "gpu_nvlink_active_links", "gpu/0") == 2
    assert one(s, "gpu_nvlink_errors_total", "gpu/0", link="0", type="replay") == 3
    assert one(s, "gpu_nvlink_errors_total", "gpu/0", link="0", type="crc_flit") == 9
    assert absent(
        [x for x in s if x.labels.get("link") == "2"], "gpu_nvlink_errors_total"
    )  # link 2 is down: its counters are not reported


def test_per_process_memory_and_xid_events() -> None:
    gpus = [FakeGpu(), FakeGpu(uuid="GPU-b", processes=[(4242, 1 << 30), (4243, None)], xids=[79])]
    source = NvmlSource(nvml=FakeNvml(gpus))
    out = source.read(T0)
    assert one(out.samples, "gpu_process_memory_bytes", "gpu/1", pid="4242") == 1 << 30
    assert absent(
        [x for x in out.samples if x.labels.get("pid") == "4243"], "gpu_process_memory_bytes"
    )
    (event,) = out.events
    assert (event.kind, event.entity, event.attributes, event.severity) == (
        "gpu_xid",
        "gpu/1",
        {"xid": "79"},
        "error",
    )
    assert source.read(T0 + 1).events == []


def test_inventory_lists_models_memory_and_power_caps() -> None:
    source = NvmlSource(
        nvml=FakeNvml([FakeGpu(), FakeGpu(name="NVIDIA A10", power_limit_mw=150_000)])
    )
    inv = source.inventory()
    assert [(g.index, g.model, g.memory_bytes, g.power_cap_watts) for g in inv] == [
        (0, "NVIDIA H100 80GB HBM3", 80 * 1024**3, 700.0),
        (1, "NVIDIA A10", 80 * 1024**3, 150.0),
    ]


def test_without_a_driver_the_mode_is_off_with_nvmls_error() -> None:
    nvml = FakeNvml([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    source = NvmlSource(nvml=nvml)
    cap = source.capability()
    assert (cap.mode, cap.reason) == ("off", "nvmlInit: NVML Shared Library Not Found")
    assert source.read(T0).samples == []
    assert source.inventory() == []


def test_real_binding_on_this_host_reports_its_own_error() -> None:
    """Whatever this host has, the real pynvml either works or says why in NVML's words."""
    source = NvmlSource()
    cap = source.capability()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        assert cap.mode == "off"
        assert cap.reason == f"nvmlInit: {err}"
    else:
        pynvml.nvmlShutdown()
        assert cap.mode == "kernel"
    finally:
        source.close()


def test_close_shuts_nvml_down() -> None:
    nvml = FakeNvml([FakeGpu()])
    NvmlSource(nvml=nvml).close()
    assert nvml.shutdown
