"""Isolated stacks reserve ports below the kernel's ephemeral range, so no outgoing connection takes one."""

from __future__ import annotations

import random

from stack.isolated import ephemeral_range, free_port_block


def test_port_blocks_lie_below_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    assert 1024 < low < high
    for seed in range(30):
        base = free_port_block(25, random.Random(seed))
        assert 10000 <= base and base + 25 <= low, (base, low)
