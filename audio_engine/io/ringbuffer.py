"""A lock-free single-producer / single-consumer ring buffer of float32 frames.

It hands blocks between an audio callback and another thread (an input stream's callback and
an output stream's callback on two devices; a callback and a recorder) without allocating and
without a lock. The model is PortAudio's ``PaUtilRingBuffer``: the writer owns the write
counter, the reader owns the read counter, each side only *reads* the other's counter, and a
counter is advanced only after the frames it covers have been copied. Counters are monotonic
64-bit frame counts (they never wrap in practice: 2**63 frames is six million years at 48 kHz),
so "full" and "empty" need no spare slot.

The copies run in Numba kernels that hold the GIL for their whole duration, so a reader never
sees a counter advanced before its frames are in place.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from audio_engine.dsp.base import MAX_CHANNELS
from audio_engine.errors import ConfigError

#: Largest ring: 2**22 frames (87 s at 48 kHz); a bigger hand-over buffer is a design error.
MAX_CAPACITY_FRAMES = 1 << 22

# Indices into the counters array. The writer alone changes WRITTEN and DROPPED, the reader
# alone changes READ, MISSING and SKIPPED: that single-owner rule is what makes the ring
# lock-free.
WRITTEN, READ, DROPPED, MISSING, SKIPPED = 0, 1, 2, 3, 4


@njit(cache=True)
def _ring_write(ring: np.ndarray, counters: np.ndarray, block: np.ndarray) -> int:
    """Copy as much of ``block`` as fits into ``ring``; return the frames written."""
    capacity = ring.shape[0]
    channels = min(ring.shape[1], block.shape[1])
    frames = block.shape[0]
    free = capacity - (counters[WRITTEN] - counters[READ])
    n = min(frames, free)
    start = counters[WRITTEN] % capacity
    for i in range(n):
        row = (start + i) % capacity
        for c in range(channels):
            ring[row, c] = block[i, c]
    counters[DROPPED] += frames - n
    counters[WRITTEN] += n
    return n


@njit(cache=True)
def _ring_read(out: np.ndarray, ring: np.ndarray, counters: np.ndarray) -> int:
    """Copy up to ``len(out)`` frames from ``ring`` into ``out``; zero the rest; return frames read."""
    capacity = ring.shape[0]
    channels = min(ring.shape[1], out.shape[1])
    frames = out.shape[0]
    available = counters[WRITTEN] - counters[READ]
    n = min(frames, available)
    start = counters[READ] % capacity
    for i in range(n):
        row = (start + i) % capacity
        for c in range(channels):
            out[i, c] = ring[row, c]
    for i in range(n, frames):
        for c in range(out.shape[1]):
            out[i, c] = 0.0
    # Zeros before the first frame ever arrived are the normal start of a stream, not an
    # underrun: count only those after it.
    if counters[READ] + n > 0:
        counters[MISSING] += frames - n
    counters[READ] += n
    return n


@njit(cache=True)
def _ring_skip(counters: np.ndarray, keep_frames: int) -> int:
    """Reader side: discard the oldest frames so at most ``keep_frames`` stay; return frames discarded."""
    excess = counters[WRITTEN] - counters[READ] - keep_frames
    if excess <= 0:
        return 0
    counters[SKIPPED] += excess
    counters[READ] += excess
    return excess


class RingBuffer:
    """Fixed-size SPSC ring of ``capacity_frames`` x ``channels`` float32 samples.

    Parameters
    ----------
    capacity_frames : int
        Frames the ring holds, 1..:data:`MAX_CAPACITY_FRAMES`.
    channels : int
        Samples per frame, 1..64.

    Notes
    -----
    :meth:`write` and :meth:`read` are real-time safe (no allocation beyond the returned int, no
    lock, no logging) and lock-free for exactly one writer thread and one reader thread. When the
    ring is full the *newest* frames are dropped and counted (:attr:`dropped_frames`); when it
    is empty the reader gets zeros, counted as :attr:`missing_frames` once the first frame has
    been read — the audio equivalents of an input overflow and an output underflow.

    Examples
    --------
    >>> ring = RingBuffer(1024, 1)
    >>> ring.write(np.ones((300, 1), np.float32))
    300
    >>> out = np.empty((512, 1), np.float32)
    >>> ring.read(out), float(out[299, 0]), float(out[300, 0])
    (300, 1.0, 0.0)
    """

    def __init__(self, capacity_frames: int, channels: int = 1):
        if (
            isinstance(capacity_frames, bool)
            or not isinstance(capacity_frames, int | np.integer)
            or not 1 <= capacity_frames <= MAX_CAPACITY_FRAMES
        ):
            raise ConfigError(
                f"capacity_frames={capacity_frames!r} is not an integer in 1..{MAX_CAPACITY_FRAMES}"
            )
        if (
            isinstance(channels, bool)
            or not isinstance(channels, int | np.integer)
            or not 1 <= channels <= MAX_CHANNELS
        ):
            raise ConfigError(f"channels={channels!r} is not an integer in 1..{MAX_CHANNELS}")
        self.capacity_frames = int(capacity_frames)
        self.channels = int(channels)
        self._ring = np.zeros((self.capacity_frames, self.channels), np.float32)
        self._counters = np.zeros(5, np.int64)
        # Compile (or load from cache) before any audio thread calls in.
        scratch = np.zeros((1, self.channels), np.float32)
        warm_ring = np.zeros((1, self.channels), np.float32)
        warm_counters = np.zeros(5, np.int64)
        _ring_write(warm_ring, warm_counters, scratch)
        _ring_read(scratch, warm_ring, warm_counters)
        _ring_skip(warm_counters, 0)

    # -- hot path (one writer thread, one reader thread) --------------------------------------
    def write(self, block: np.ndarray) -> int:
        """Append ``block`` (frames, channels) float32; return the frames that fit.

        Real-time safe for the single writer. Extra input channels are ignored, missing ones
        are left as they were.
        """
        return _ring_write(self._ring, self._counters, block)

    def read(self, out: np.ndarray) -> int:
        """Fill ``out`` (frames, channels) float32 with the oldest frames; zero-pad; return frames read.

        Real-time safe for the single reader.
        """
        return _ring_read(out, self._ring, self._counters)

    def skip_to(self, keep_frames: int) -> int:
        """Discard the oldest frames so at most ``keep_frames`` remain; return frames discarded.

        Real-time safe for the single reader. A reader whose writer runs on another clock calls
        this to keep the hand-over latency bounded: after a stall the writer has piled up old
        audio, and playing it late forever is worse than skipping it once.
        """
        return _ring_skip(self._counters, keep_frames)

    # -- either thread, for monitoring ---------------------------------------------------------
    @property
    def readable_frames(self) -> int:
        """Frames waiting to be read (a snapshot)."""
        return int(self._counters[WRITTEN] - self._counters[READ])

    @property
    def writable_frames(self) -> int:
        """Frames that can be written without dropping (a snapshot)."""
        return self.capacity_frames - self.readable_frames

    @property
    def dropped_frames(self) -> int:
        """Frames the writer could not store because the ring was full."""
        return int(self._counters[DROPPED])

    @property
    def missing_frames(self) -> int:
        """Frames the reader got as zeros because the ring was empty (after the first real frame)."""
        return int(self._counters[MISSING])

    @property
    def skipped_frames(self) -> int:
        """Frames the reader discarded with :meth:`skip_to`."""
        return int(self._counters[SKIPPED])

    def clear(self) -> None:
        """Forget every frame and counter. Not thread-safe: call only while both sides are stopped."""
        self._counters.fill(0)
        self._ring.fill(0.0)

    def __repr__(self) -> str:
        return (
            f"RingBuffer(capacity_frames={self.capacity_frames}, channels={self.channels}, "
            f"readable_frames={self.readable_frames})"
        )
