"""Leader election through a lease row in the run store (meant for PostgreSQL).

Every controller tries to take or renew the lease ``controller`` every ``ttl/3`` seconds.
The holder ingests and runs workflows; the others serve reads and answer writes with 503 and
the holder's URL. Expiry is judged by the database's clock, so controllers need not agree
on time. A leader that cannot renew (database unreachable) steps down once its own lease
would have expired, before anyone else can take it over. Without ``leader.enabled`` a
controller is always leader.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sreagent.controller.store import RunStore

log = logging.getLogger(__name__)
LEASE = "controller"


class LeaderLease:
    def __init__(
        self,
        store: RunStore,
        *,
        node_id: str,
        url: str,
        ttl_s: float,
        enabled: bool,
        on_change: Callable[[bool], None] = lambda leader: None,
    ):
        self.store = store
        self.node_id = node_id
        self.url = url
        self.ttl_s = ttl_s
        self.enabled = enabled
        self.on_change = on_change
        self.leader_url: str = url if not enabled else ""
        self.epoch = 0
        self.transitions = 0
        self._is_leader = not enabled
        self._valid_until = float("inf") if not enabled else 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        # Also false once our lease would have run out unrenewed: never act on a stale lease.
        return self._is_leader and time.monotonic() < self._valid_until

    def start(self) -> None:
        if not self.enabled:
            return
        self.tick()
        self._thread = threading.Thread(target=self._run, name="leader-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.enabled and self._is_leader:
            try:
                self.store.release_lease(LEASE, holder=self.node_id)
            except Exception:  # best effort: the TTL frees it anyway
                log.warning("could not release the leader lease", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            self.tick()

    def tick(self) -> None:
        started = time.monotonic()
        try:
            lease = self.store.try_lease(
                LEASE, holder=self.node_id, url=self.url, ttl_ns=int(self.ttl_s * 1e9)
            )
        except Exception as err:
            log.warning("leader lease check failed: %s", err)
            return
        leader = bool(lease["is_holder"])
        self.leader_url = lease["holder_url"]
        self.epoch = int(lease["epoch"])
        if leader:
            # Count from before the round trip, so we stop before the database would let
            # another controller in.
            self._valid_until = started + self.ttl_s
        if leader != self._is_leader:
            self._is_leader = leader
            self.transitions += 1
            log.warning(
                "controller %s is now %s (epoch %d)",
                self.node_id,
                "LEADER" if leader else "a follower",
                self.epoch,
            )
            try:
                self.store.audit(
                    self.node_id,
                    "leader_transition",
                    LEASE,
                    {"leader": leader, "epoch": self.epoch},
                )
            except Exception:
                log.warning("could not audit the leader transition", exc_info=True)
            self.on_change(leader)
