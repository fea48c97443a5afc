"""Many borrowers' event streams merged into one stream in event-time order, lazily."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from ingestion.behaviour import BehaviourConfig, Event, simulate
from ingestion.synthetic_customers import Customer, Loan
from ingestion.timeutil import add_months_ms


def merge_lives(participants: Iterable[tuple[Customer, Loan]], cfg: BehaviourConfig, seed: int,
                emit_transactions: bool = True) -> Iterator[Event]:
    """Every participant's events, merged by event time (ties: arrival order, then per-borrower order).

    ``participants`` must come in origination order (it may be endless); a borrower's simulation
    starts only when the merged stream reaches their first month, so memory stays bounded.
    """
    pending = iter(participants)
    heap: list[tuple[int, int, int, Event, Iterator[Event]]] = []
    nxt = next(pending, None)
    nxt_first = add_months_ms(nxt[1].origination_ms, -cfg.history_months) if nxt else 0
    n = 0
    while True:
        while nxt is not None and (not heap or nxt_first <= heap[0][0]):
            life = simulate(nxt[0], nxt[1], cfg, seed, emit_transactions)
            first = next(life, None)
            if first is not None:
                n += 1
                heapq.heappush(heap, (first[0], n, 0, first, life))
            nxt = next(pending, None)
            nxt_first = add_months_ms(nxt[1].origination_ms, -cfg.history_months) if nxt else 0
        if not heap:
            return
        t, who, k, event, life = heap[0]
        following = next(life, None)
        if following is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (following[0], who, k + 1, following, life))
        yield event
