"""A model of PyTorch's CUDA caching allocator, replayed over an allocation trace: reserved memory.

Pure Python (no torch): it takes the sequence of (allocate id size | free id) events the simulated step
produced and places every block the way c10/cuda/CUDACachingAllocator.cpp (PyTorch 2.4-2.13, default
settings: no expandable segments, no max_split_size, one stream) does:

- every request is rounded up to a multiple of kMinBlockSize = 512 bytes (`round_size`);
- requests of at most kSmallSize = 1 MiB come from the small pool, larger ones from the large pool;
- a request that no cached free block can hold opens a new segment (cudaMalloc) of
  `get_allocation_size`: kSmallBuffer = 2 MiB for small requests, kLargeBuffer = 20 MiB for requests
  below kMinLargeAlloc = 10 MiB, else the request rounded up to kRoundLarge = 2 MiB;
- the free block chosen is the smallest one in the pool that holds the request (best fit; ties: lowest
  address), and it is split when the rest is worth keeping (`should_split`: small pool, rest >= 512 B;
  large pool, rest > 1 MiB); otherwise the whole block is handed out (and counted as allocated);
- a freed block merges with free neighbours of its segment; segments are never returned to the driver
  (no empty_cache, no OOM retry), so reserved memory only grows.

Reserved memory is the sum of segment sizes, exactly what torch.cuda.memory_reserved() reports.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

K_MIN_BLOCK_SIZE = 512  # kMinBlockSize
K_SMALL_SIZE = 1 << 20  # kSmallSize: largest "small" request (1 MiB)
K_SMALL_BUFFER = 2 << 20  # kSmallBuffer: small-pool segment (2 MiB)
K_LARGE_BUFFER = 20 << 20  # kLargeBuffer: segment for 1-10 MiB requests (20 MiB)
K_MIN_LARGE_ALLOC = 10 << 20  # kMinLargeAlloc: from here, segments are the request rounded to kRoundLarge
K_ROUND_LARGE = 2 << 20  # kRoundLarge (2 MiB)


def round_size(size: int) -> int:
    """Bytes a request of `size` occupies (CUDACachingAllocator `round_size`, no power-of-two divisions)."""
    if size < K_MIN_BLOCK_SIZE:
        return K_MIN_BLOCK_SIZE
    return K_MIN_BLOCK_SIZE * ((size + K_MIN_BLOCK_SIZE - 1) // K_MIN_BLOCK_SIZE)


def allocation_size(size: int) -> int:
    """Size of the segment opened for a rounded request that no cached block can hold (`get_allocation_size`)."""
    if size <= K_SMALL_SIZE:
        return K_SMALL_BUFFER
    if size < K_MIN_LARGE_ALLOC:
        return K_LARGE_BUFFER
    return K_ROUND_LARGE * ((size + K_ROUND_LARGE - 1) // K_ROUND_LARGE)


@dataclass
class _Block:
    segment: int
    offset: int
    size: int
    small: bool
    free: bool = True
    prev: "_Block | None" = None
    next: "_Block | None" = None

    def key(self) -> tuple[int, int, int]:
        return (self.size, self.segment, self.offset)


@dataclass
class _Pool:
    free: list[tuple[int, int, int]] = field(default_factory=list)  # sorted keys of free blocks
    blocks: dict[tuple[int, int, int], _Block] = field(default_factory=dict)

    def add(self, b: _Block) -> None:
        k = b.key()
        bisect.insort(self.free, k)
        self.blocks[k] = b

    def remove(self, b: _Block) -> None:
        k = b.key()
        i = bisect.bisect_left(self.free, k)
        del self.free[i]
        del self.blocks[k]

    def best_fit(self, size: int) -> _Block | None:
        i = bisect.bisect_left(self.free, (size, -1, -1))
        if i == len(self.free):
            return None
        return self.blocks[self.free[i]]


@dataclass
class AllocatorStats:
    peak_reserved: int = 0
    peak_allocated: int = 0  # as torch.cuda.max_memory_allocated(): whole blocks handed out
    reserved: int = 0
    allocated: int = 0
    segments: int = 0


class CachingAllocator:
    """Replays malloc/free events; `stats` holds the peaks."""

    def __init__(self) -> None:
        self.small = _Pool()
        self.large = _Pool()
        self.live: dict[int, _Block] = {}
        self.stats = AllocatorStats()
        self._segments = 0

    def malloc(self, ident: int, size: int) -> None:
        if size <= 0:
            return
        size = round_size(size)
        small = size <= K_SMALL_SIZE
        pool = self.small if small else self.large
        block = pool.best_fit(size)
        if block is None:
            seg = allocation_size(size)
            self._segments += 1
            block = _Block(segment=self._segments, offset=0, size=seg, small=small)
            self.stats.reserved += seg
            self.stats.segments += 1
            self.stats.peak_reserved = max(self.stats.peak_reserved, self.stats.reserved)
        else:
            pool.remove(block)
        rest = block.size - size
        if (small and rest >= K_MIN_BLOCK_SIZE) or (not small and rest > K_SMALL_SIZE):
            tail = _Block(segment=block.segment, offset=block.offset + size, size=rest, small=small, prev=block,
                          next=block.next)
            if block.next is not None:
                block.next.prev = tail
            block.next = tail
            block.size = size
            pool.add(tail)
        block.free = False
        self.live[ident] = block
        self.stats.allocated += block.size
        self.stats.peak_allocated = max(self.stats.peak_allocated, self.stats.allocated)

    def free(self, ident: int) -> None:
        block = self.live.pop(ident, None)
        if block is None:
            return
        self.stats.allocated -= block.size
        pool = self.small if block.small else self.large
        block.free = True
        for nb in (block.prev, block.next):
            if nb is not None and nb.free:
                pool.remove(nb)
                if nb is block.prev:
                    nb.size += block.size
                    nb.next = block.next
                    if block.next is not None:
                        block.next.prev = nb
                    block = nb
                else:
                    block.size += nb.size
                    block.next = nb.next
                    if nb.next is not None:
                        nb.next.prev = block
        pool.add(block)


def replay(events: list[tuple[int, int]]) -> AllocatorStats:
    """Replay (ident, size) events: size > 0 allocates block `ident`, size == 0 frees it (others: ignored).

    Returns the allocator's peaks (reserved and allocated, in bytes).
    """
    alloc = CachingAllocator()
    for ident, size in events:
        if size > 0:
            alloc.malloc(ident, size)
        else:
            alloc.free(ident)
    return alloc.stats

