"""Reserved memory from a replay of big allocations through a model of PyTorch's CUDA caching allocator.

torch.cuda.max_memory_reserved() exceeds max_memory_allocated() because freed blocks stay cached in their
segments and a later request that does not fit any cached free block opens a new segment. The rules modelled
are those of c10/cuda/CUDACachingAllocator.cpp (PyTorch 2.x, unchanged through 2.5-2.9):
- every request is rounded up to 512 bytes (kMinBlockSize);
- requests above 1 MiB (kSmallSize) use the large pool; a request that no free block fits opens a segment of
  20 MiB (kLargeBuffer) when under 10 MiB (kMinLargeAlloc), else the request rounded up to 2 MiB (kRoundLarge);
- a request takes the best-fitting free block (the smallest that is large enough; lowest address on ties)
  and splits it when more than 1 MiB would remain; freed blocks merge with free neighbours in their segment;
- segments are never returned to the driver during training (no empty_cache), so reserved only grows.
Small requests (<= 1 MiB, 2 MiB segments) are left out: their rounding is negligible next to the big blocks.

The replay is exact for the sequence it is given; the memory model gives it the big transients of the
moment at the peak (the loss's logits blocks), on top of a steady set that is allocated once.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

MIN_BLOCK = 512
SMALL_SIZE = 1 << 20
LARGE_BUFFER = 20 << 20
MIN_LARGE_ALLOC = 10 << 20
ROUND_LARGE = 2 << 20


def round_size(n: float) -> int:
    """A request's bytes as the allocator books them (multiples of 512)."""
    n = max(1, int(-(-n // 1)))
    return -(-n // MIN_BLOCK) * MIN_BLOCK


def segment_size(n: int) -> int:
    """Bytes of the segment cudaMalloc'd for a request that no cached block fits."""
    if n <= SMALL_SIZE:
        return 2 << 20
    if n < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return -(-n // ROUND_LARGE) * ROUND_LARGE


@dataclass
class _Block:
    size: int
    free: bool
    tag: str = ""


@dataclass(frozen=True)
class Replay:
    peak_allocated: int  # bytes of live blocks at the worst moment
    peak_reserved: int  # bytes of segments at the end (segments only grow)
    segments: int


def replay(events: tuple[tuple[str, str, float], ...]) -> Replay:
    """Replay ("alloc"|"free", tag, bytes) events; a free names the tag of an earlier alloc."""
    return _replay(tuple((op, tag, round_size(n) if op == "alloc" else 0) for op, tag, n in events))


@lru_cache(maxsize=4096)
def _replay(events: tuple[tuple[str, str, int], ...]) -> Replay:
    segments: list[list[_Block]] = []
    live = 0
    peak = 0
    for op, tag, size in events:
        if op == "alloc":
            best: tuple[int, int, int] | None = None  # (size, segment, index)
            for si, seg in enumerate(segments):
                for bi, blk in enumerate(seg):
                    if blk.free and blk.size >= size and (best is None or blk.size < best[0]):
                        best = (blk.size, si, bi)
            if best is None:
                segments.append([_Block(segment_size(size), True)])
                best = (segments[-1][0].size, len(segments) - 1, 0)
            _, si, bi = best
            seg = segments[si]
            blk = seg[bi]
            rest = blk.size - size
            if rest > SMALL_SIZE:
                seg.insert(bi + 1, _Block(rest, True))
                blk.size = size
            blk.free, blk.tag = False, tag
            live += blk.size
            peak = max(peak, live)
        else:
            for seg in segments:
                for bi, blk in enumerate(seg):
                    if not blk.free and blk.tag == tag:
                        blk.free, blk.tag = True, ""
                        live -= blk.size
                        _merge(seg)
                        break
                else:
                    continue
                break
            else:
                raise ValueError(f"free of unknown block {tag!r}")
    return Replay(peak_allocated=peak, peak_reserved=sum(b.size for seg in segments for b in seg),
                  segments=len(segments))


def _merge(seg: list[_Block]) -> None:
    i = 0
    while i < len(seg) - 1:
        if seg[i].free and seg[i + 1].free:
            seg[i].size += seg[i + 1].size
            del seg[i + 1]
        else:
            i += 1


def loss_events(elements: float, upcast: bool) -> tuple[tuple[str, str, float], ...]:
    """The loss's big blocks over one forward and backward, for `elements` logits (b x s x V).

    With the fp32 upcast (train/loss.py `_chunk_loss`; transformers 5 ForCausalLMLoss): 16-bit logits, their
    fp32 copy, the fp32 log-softmax (saved), the 16-bit logits freed after the copy and the fp32 copy freed
    when the loss returns; backward: nll_loss's fp32 grad, log-softmax backward's fp32 grad_input, then the
    16-bit grad of the logits. Without the upcast (litgpt): 16-bit logits, 16-bit log-softmax, 16-bit grads.
    """
    e = elements
    if not upcast:
        return (("alloc", "logits16", 2 * e), ("alloc", "logp", 2 * e), ("alloc", "g_logp", 2 * e),
                ("alloc", "g_in", 2 * e), ("free", "g_logp", 0), ("free", "logp", 0), ("free", "logits16", 0),
                ("free", "g_in", 0))
    return (("alloc", "logits16", 2 * e), ("alloc", "logits32", 4 * e), ("free", "logits16", 0),
            ("alloc", "logp", 4 * e), ("free", "logits32", 0),
            ("alloc", "g_logp", 4 * e), ("alloc", "g_in", 4 * e), ("free", "g_logp", 0), ("free", "logp", 0),
            ("alloc", "g16", 2 * e), ("free", "g_in", 0), ("free", "g16", 0))


def loss_fragmentation(elements: float, upcast: bool = True) -> float:
    """Bytes the allocator holds beyond the live bytes at the loss's backward peak (reserved - allocated).

    Fast path (the fit searches call this ~1000 times a plan): once every block is at least 10 MiB each one
    gets its own segment rounded to 2 MiB, and the replay reduces to closed form -- with the upcast, segments
    for the 16-bit logits, the fp32 copy, the log-softmax and the grad_input (nll's grad reuses the fp32 copy's
    segment, the 16-bit grad the 16-bit logits'); without it, one per block. A test checks it against the replay.
    """
    if elements <= 0:
        return 0.0
    e = elements
    if 2 * e >= MIN_LARGE_ALLOC:
        two, four = round_size(2 * e), round_size(4 * e)
        if upcast:
            return float(segment_size(two) + 3 * segment_size(four) - 3 * _block(four))
        return float(4 * (segment_size(two) - _block(two)))
    r = replay(loss_events(elements, upcast))
    return float(r.peak_reserved - r.peak_allocated)


def _block(n: int) -> int:
    """Bytes booked for a request that fills a fresh segment: the whole segment unless > 1 MiB is left over."""
    seg = segment_size(n)
    return n if seg - n > SMALL_SIZE else seg


def loss_fragmentation_replayed(elements: float, upcast: bool = True) -> float:
    """The same figure from the full replay (the reference for the fast path)."""
    r = replay(loss_events(elements, upcast))
    return float(r.peak_reserved - r.peak_allocated)
