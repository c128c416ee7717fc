"""Independent random streams: student init, data order + crop/flip, virtual views.

Every stream is seeded from (run seed, stream id[, epoch, step]) by splitmix64 mixing, so nothing depends on the
global RNG: a resumed run is bit-identical on CPU, and two methods with the same seed see the same initial weights
and the same batches.
"""

from __future__ import annotations

STREAM_INIT, STREAM_DATA, STREAM_VIEW = 1, 2, 3


def stream_seed(*parts: int) -> int:
    """A 63-bit seed for an independent random stream named by integers (splitmix64 mixing)."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x & 0x7FFFFFFFFFFFFFFF
