"""``io-saturation``: direct IO (fio, or dd with oflag=direct) on a file in a lab temp dir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from sreagent.lab.live._errors import LabRefused
from sreagent.lab.live._injector import Injector, InjectorOptions
from sreagent.lab.live._names import run_name
from sreagent.lab.live._resources import Resource, TempDir, Worker


class IoSaturationOptions(InjectorOptions):
    engine: Literal["auto", "fio", "dd"] = "auto"
    """fio when installed (random read/write, deep queue), else dd writing with O_DIRECT."""
    size_mib: int = Field(256, ge=16, le=65536)
    """The file the load runs against (the dir's filesystem must have room for it)."""
    rw: Literal["randwrite", "randrw", "randread", "write", "read"] = "randwrite"
    """fio's access pattern (dd always writes sequentially)."""
    block_size: str = Field("64k", pattern=r"^[0-9]+[kKmM]?$")
    """64 KiB random writes at depth 64 keep even a fast virtual disk 100 % busy with tens of
    ms of await (4 KiB ones left this project's virtio disk at 20-70 % and ~1 ms)."""
    iodepth: int = Field(64, ge=1, le=1024)
    jobs: int = Field(2, ge=1, le=64)


def block_device_of(path: Path, sys_root: Path = Path("/sys")) -> str | None:
    """The whole disk (``vda``, ``nvme0n1``) holding ``path``'s filesystem, or None."""
    st = os.stat(path)
    node = sys_root / "dev/block" / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    try:
        real = node.resolve(strict=True)
    except OSError:
        return None
    return real.parent.name if (real / "partition").exists() else real.name


class IoSaturation(Injector):
    name = "io-saturation"
    summary = "direct random IO against a file in a temp dir (fio, or dd oflag=direct)"
    fault_class = "disk_io_saturation"
    observe = "the disk's /sys/block/<dev>/stat: reads/writes completed and io_ticks (busy ms) grow"
    Options = IoSaturationOptions

    def _engine(self) -> str:
        o = self.options
        assert isinstance(o, IoSaturationOptions)
        if o.engine != "auto":
            return o.engine
        return "fio" if shutil.which("fio") else "dd"

    def preflight(self) -> None:
        super().preflight()
        engine = self._engine()
        if shutil.which(engine) is None:
            raise LabRefused(f"io-saturation needs `{engine}`, which is not installed")
        if self.device is None:
            raise LabRefused(
                f"{self.host.tmp} is not on a block device (tmpfs?); direct IO needs one"
            )

    def _build(self) -> list[Resource]:
        o = self.options
        assert isinstance(o, IoSaturationOptions)
        self.device = block_device_of(self.host.tmp, self.host.sys)
        self._dir = TempDir(self.host.tmp / run_name(self.tag, "io"))
        target = self._dir.path / "load"
        seconds = max(1, round(self.duration_s))
        if self._engine() == "fio":
            cmd = [
                "fio",
                "--name",
                self.run,
                "--filename",
                str(target),
                "--size",
                f"{o.size_mib}M",
                "--rw",
                o.rw,
                "--bs",
                o.block_size,
                "--direct",
                "1",
                "--ioengine",
                "libaio",
                "--iodepth",
                str(o.iodepth),
                "--numjobs",
                str(o.jobs),
                "--time_based",
                "--runtime",
                str(seconds),
                "--group_reporting",
                "--output",
                os.devnull,
            ]
        else:
            cmd = [
                "timeout",
                str(seconds),
                "dd",
                "if=/dev/zero",
                f"of={target}",
                f"bs={o.block_size}",
                f"count={(o.size_mib << 20) // _bytes(o.block_size)}",
                "oflag=direct",
                "status=none",
            ]
        return [self._dir, Worker(self.run, "io", cmd)]

    def _entity(self) -> str:
        return f"disk/{self.device}"

    def related_entities(self) -> list[str]:
        return [f"process/{w.pid}" for w in self.workers() if w.popen is not None]


def _bytes(size: str) -> int:
    unit = {"k": 1 << 10, "m": 1 << 20}.get(size[-1].lower(), 1)
    return int(size.rstrip("kKmM")) * unit
