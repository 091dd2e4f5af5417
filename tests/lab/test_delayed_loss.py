"""net-loss with a healthy pre-roll (``impair_after_s``): the paced traffic crosses the link
without retransmits first, the loss starts on time, and undo before it cancels it (root)."""

from __future__ import annotations

import subprocess
import time

import pytest

from sreagent.lab.live import run_injection
from sreagent.lab.live._net_loss import NetLoss
from sreagent.lab.live._rules import RETRANSMITS_ABOVE
from tests.conftest import require_binary, requires_root

from . import observe as ob

pytestmark = [pytest.mark.slow, requires_root]

PACED = {"topology": "netns-pair", "send_kbit": 4000, "rate": "8mbit", "loss_percent": 20}


def _drop_table(inj: NetLoss, name: str) -> bool:
    done = subprocess.run([*inj.netns_exec("b"), "nft", "list", "table", "inet", name],
                          capture_output=True, text=True)
    return done.returncode == 0


def test_loss_starts_after_a_clean_preroll(nothing_left: list[str]) -> None:
    require_binary("nft")
    with run_injection("net-loss", 30, options={**PACED, "impair_after_s": 6.0}) as inj:
        nothing_left.append(inj.tag)
        injector = inj.injector
        assert isinstance(injector, NetLoss)
        ns_a = injector.sender_netns()
        start, t0 = ob.snmp_tcp(ns_a, "RetransSegs"), time.monotonic()
        assert injector.fault_started_ns() is None
        # The paced stream flows over the healthy link: data arrives, nothing is retransmitted.
        flowing = ob.poll(lambda: ob.snmp_tcp(ns_a, "OutSegs") > 200, 5.0)
        healthy_rate = (ob.snmp_tcp(ns_a, "RetransSegs") - start) / (time.monotonic() - t0)
        still_healthy = injector.fault_started_ns() is None
        table_before = _drop_table(injector, inj.plan.run_name)
        started = ob.poll(injector.fault_started_ns, 20.0)
        table_after = _drop_table(injector, inj.plan.run_name)
        at_loss = ob.snmp_tcp(ns_a, "RetransSegs")
        lossy = ob.poll(lambda: ob.snmp_tcp(ns_a, "RetransSegs") - at_loss >= 20, 15.0)
    assert flowing and still_healthy and not table_before
    # Far below the lab's alert rule (a late wake-up on a loaded host may still cost a loss
    # probe or two): the healthy pre-roll cannot open the incident the loss should.
    assert healthy_rate < RETRANSMITS_ABOVE / 4, f"{healthy_rate:.1f}/s on the healthy link"
    assert started and table_after and lossy
    assert inj.cleanup is not None and inj.cleanup.ok, inj.cleanup


def test_undo_before_the_loss_cancels_it(nothing_left: list[str]) -> None:
    require_binary("nft")
    with run_injection("net-loss", 30, options={**PACED, "impair_after_s": 20.0}) as inj:
        nothing_left.append(inj.tag)
        injector = inj.injector
        assert isinstance(injector, NetLoss)
        time.sleep(1.0)
    timer = injector.shaping._timer
    assert timer is not None
    timer.join(timeout=5)
    assert not timer.is_alive()
    assert injector.fault_started_ns() is None  # the loss never started
    assert inj.cleanup is not None and inj.cleanup.ok, inj.cleanup
