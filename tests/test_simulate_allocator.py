"""The caching-allocator model gives the reserved bytes a hand calculation of CUDACachingAllocator.cpp gives."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.estimator.simulate.allocator import (K_LARGE_BUFFER, K_SMALL_BUFFER, CachingAllocator, allocation_size,
                                                  replay, round_size)

MiB = 1 << 20


def test_request_sizes_round_to_512_byte_blocks_and_segments_follow_the_three_size_classes() -> None:
    assert round_size(1) == 512 and round_size(512) == 512 and round_size(513) == 1024
    assert allocation_size(MiB) == K_SMALL_BUFFER == 2 * MiB  # small pool: 2 MiB segments
    assert allocation_size(MiB + 512) == K_LARGE_BUFFER == 20 * MiB  # 1-10 MiB: 20 MiB segments
    assert allocation_size(10 * MiB) == 10 * MiB  # from 10 MiB: the request rounded to 2 MiB
    assert allocation_size(30 * MiB + 512) == 32 * MiB


def test_hand_made_trace_reserves_what_the_hand_calculation_says() -> None:
    events = [
        (1, 100),  # small pool: a 2 MiB segment                          reserved 2 MiB
        (2, 3 * MiB),  # large pool: a 20 MiB segment, split (17 MiB left) reserved 22 MiB
        (3, 12 * MiB + 1),  # 12 MiB + 512 fits in the 17 MiB rest, split  (5 MiB - 512 left)
        (4, 30 * MiB + 1),  # nothing cached holds it: a 32 MiB segment    reserved 54 MiB
        (2, 0),  # free the 3 MiB block (neighbour allocated: no merge)
        (5, 2 * MiB),  # best fit is the 3 MiB block; 1 MiB rest is not > 1 MiB: handed out whole
        (3, 0), (5, 0),  # both frees merge with the 5 MiB - 512 tail: one free 20 MiB block
        (6, 19 * MiB),  # reuses the merged 20 MiB block: no new segment
    ]
    stats = replay(events)
    assert stats.peak_reserved == 54 * MiB
    assert stats.segments == 3
    # allocated as torch counts it: whole blocks. After (4): 512 + 3 MiB + (12 MiB + 512) + (30 MiB + 512);
    # the peak comes last: the 19 MiB request leaves a 1 MiB rest (not > 1 MiB), so it takes all 20 MiB
    assert stats.peak_allocated == 512 + (30 * MiB + 512) + 20 * MiB


def test_small_requests_share_one_2_mib_segment_until_it_is_full() -> None:
    stats = replay([(i, 512) for i in range(1, 4097)])  # 4096 x 512 B = 2 MiB exactly
    assert stats.peak_reserved == 2 * MiB
    stats = replay([(i, 512) for i in range(1, 4098)])
    assert stats.peak_reserved == 4 * MiB


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 64 * MiB)), min_size=1, max_size=60))
def test_any_trace_reserves_at_least_what_is_allocated_and_frees_everything(ops: list[tuple[bool, int]]) -> None:
    alloc = CachingAllocator()
    live: list[int] = []
    for i, (free, size) in enumerate(ops):
        if free and live:
            alloc.free(live.pop(0))
        else:
            alloc.malloc(i, size)
            live.append(i)
        assert alloc.stats.allocated <= alloc.stats.reserved
    for ident in live:
        alloc.free(ident)
    assert alloc.stats.allocated == 0
    assert alloc.stats.peak_reserved >= alloc.stats.peak_allocated
