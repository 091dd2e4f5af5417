"""How lab resources are named, so that the sweeper can find every one of them by name alone.

Every resource a live injection creates carries its run tag: ``sreagent-lab-<tag>`` with
``<tag>`` eight lowercase hex digits, optionally followed by ``-<part>`` (cgroups, network
namespaces, nftables tables, temp directories, the worker processes' environment). Interface
names are limited to 15 bytes (IFNAMSIZ), so veth ends are ``slab<tag><side>`` instead.
"""

from __future__ import annotations

import re
import secrets

PREFIX = "sreagent-lab-"
TAG_ENV = "SREAGENT_LAB_TAG"
"""Environment variable every worker process carries; its value is the full run name."""

_TAG = r"[0-9a-f]{8}"
# ``.scope``: a cgroup named like a systemd unit (cgroup-throttle's ``unit`` option).
_NAME = re.compile(rf"^{re.escape(PREFIX)}({_TAG})(?:-[a-z0-9][a-z0-9-]*)?(?:\.scope)?$")
_IFNAME = re.compile(rf"^slab({_TAG})[ab]$")


def new_tag() -> str:
    """A fresh run tag (from the OS's random source; this is not analysis code)."""
    return secrets.token_hex(4)


def run_name(tag: str, part: str | None = None) -> str:
    """``sreagent-lab-<tag>`` or ``sreagent-lab-<tag>-<part>``."""
    return f"{PREFIX}{tag}" if part is None else f"{PREFIX}{tag}-{part}"


def ifname(tag: str, side: str) -> str:
    """A veth end's name: ``slab<tag>a`` or ``slab<tag>b`` (13 bytes, under IFNAMSIZ)."""
    return f"slab{tag}{side}"


def tag_of(name: str) -> str | None:
    """The run tag a lab name carries, or None when the name is not a lab name."""
    match = _NAME.match(name) or _IFNAME.match(name)
    return match.group(1) if match else None


def is_tag(text: str) -> bool:
    return re.fullmatch(_TAG, text) is not None
