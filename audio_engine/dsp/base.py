"""The one streaming-processor protocol every DSP stage follows.

A processor is built with its ``sample_rate``, ``block_size`` and ``channels``; it allocates all
of its memory then. Afterwards :meth:`Processor.process` is real-time safe: it writes into the
caller's ``out`` array, allocates nothing, logs nothing, touches no file and never raises on bad
samples (NaN, Inf, clipping are survived, not reported). Blocks are ``float32`` arrays of shape
``(frames, channels)``, as PortAudio and sounddevice hand them over, with
``1 <= frames <= block_size``.

The model is pedalboard's plugin protocol (prepare, process, reset, latency) and rnnoise's
``DenoiseState``: fixed-size state created once, a process call that only computes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
from numba import njit

from audio_engine.errors import ConfigError

#: Sample rates every stage of the engine supports natively (no resampler in the path).
SUPPORTED_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 24000, 32000, 44100, 48000)

#: Largest block a processor may be built for: 2**16 frames (1.4 s at 48 kHz); larger blocks are
#: a file-processing convenience, not a real-time setting.
MAX_BLOCK_SIZE = 1 << 16

#: Most channels a processor may be built for (a 32-zone masking system, a 64-mic array).
MAX_CHANNELS = 64

#: Largest |sample| the general-purpose stages (:class:`Gain`, :class:`Delay`) output: 1e6, 120 dB
#: above digital full scale, the same clamp as the weighting filter's input
#: (``audio_engine.dsp.weighting.INPUT_LIMIT``). Nothing real is that loud; the clamp only keeps
#: 3.4e38 times a gain from overflowing to Inf and leaves every later sum far inside float32 range.
SAMPLE_BOUND = 1.0e6


@njit(cache=True)
def bounded_gain_kernel(out: np.ndarray, block: np.ndarray, gain: np.float32, bound: float) -> None:
    """``out = clamp(gain * block, -bound, bound)`` with NaN and Inf input samples as 0.

    Real-time safe (no allocation). ``out`` may be ``block`` itself.

    Parameters
    ----------
    out : ndarray, shape (frames, channels), float32
        Written in place.
    block : ndarray, shape (frames, channels), float32
        Input samples.
    gain : float32
        Linear gain.
    bound : float
        Largest |output sample|, > 0.

    Notes
    -----
    A non-finite input counts as silence (the contract of every processor: garbage from a
    capture driver is survived, never passed on); an overflow of a finite product is clamped.
    """
    for n in range(block.shape[0]):
        for c in range(block.shape[1]):
            x = block[n, c]
            if not math.isfinite(x):
                out[n, c] = 0.0
                continue
            y = x * gain
            if y > bound:
                y = bound
            elif y < -bound:
                y = -bound
            out[n, c] = y


@njit(cache=True)
def delay_kernel(
    out: np.ndarray, ring: np.ndarray, block: np.ndarray, write: int, delay: int
) -> int:
    """Write ``block`` into the ring at ``write``, read ``out`` from ``delay`` frames back.

    Real-time safe (no allocation). ``out`` may be ``block`` itself (the whole block is stored
    before anything is read). Non-finite samples are stored as 0 and finite ones clamped to
    +-:data:`SAMPLE_BOUND`, so the ring never holds garbage.

    Parameters
    ----------
    out : ndarray, shape (frames, channels), float32
        Written in place.
    ring : ndarray, shape (delay + block_size, channels), float32
        Delay memory, updated in place.
    block : ndarray, shape (frames, channels), float32
        Input samples, ``frames <= ring.shape[0] - delay``.
    write : int
        Ring index the first frame is stored at.
    delay : int
        Delay in frames, ``0 <= delay``.

    Returns
    -------
    int
        The ring index the next block is stored at.
    """
    size = ring.shape[0]
    frames = block.shape[0]
    for n in range(frames):
        w = (write + n) % size
        for c in range(block.shape[1]):
            x = block[n, c]
            if not math.isfinite(x):
                x = 0.0
            elif x > SAMPLE_BOUND:
                x = SAMPLE_BOUND
            elif x < -SAMPLE_BOUND:
                x = -SAMPLE_BOUND
            ring[w, c] = x
    read = (write - delay) % size
    for n in range(frames):
        r = (read + n) % size
        for c in range(block.shape[1]):
            out[n, c] = ring[r, c]
    return (write + frames) % size


def check_sample_rate(
    sample_rate: object, allowed: tuple[int, ...] = SUPPORTED_SAMPLE_RATES
) -> int:
    """Return ``sample_rate`` as an int, or raise a ConfigError naming it and what is allowed."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float | np.integer):
        raise ConfigError(
            f"sample_rate={sample_rate!r} is not a number; allowed: {list(allowed)} Hz"
        )
    if (
        not np.isfinite(sample_rate)
        or int(sample_rate) != sample_rate
        or int(sample_rate) not in allowed
    ):
        raise ConfigError(
            f"sample_rate={sample_rate!r} is not supported; allowed: {list(allowed)} Hz"
        )
    return int(sample_rate)


def check_block_size(block_size: object) -> int:
    """Return ``block_size`` as an int, or raise a ConfigError naming it and the allowed range."""
    if isinstance(block_size, bool) or not isinstance(block_size, int | np.integer):
        raise ConfigError(f"block_size={block_size!r} is not an integer in 1..{MAX_BLOCK_SIZE}")
    if not 1 <= int(block_size) <= MAX_BLOCK_SIZE:
        raise ConfigError(f"block_size={block_size!r} is not an integer in 1..{MAX_BLOCK_SIZE}")
    return int(block_size)


def check_channels(channels: object, name: str = "channels") -> int:
    """Return ``channels`` as an int, or raise a ConfigError naming it and the allowed range."""
    if isinstance(channels, bool) or not isinstance(channels, int | np.integer):
        raise ConfigError(f"{name}={channels!r} is not an integer in 1..{MAX_CHANNELS}")
    if not 1 <= int(channels) <= MAX_CHANNELS:
        raise ConfigError(f"{name}={channels!r} is not an integer in 1..{MAX_CHANNELS}")
    return int(channels)


def check_number(name: str, value: object, low: float, high: float, unit: str = "") -> float:
    """Return ``value`` as a float if it is a finite number in ``low..high``, else raise.

    The one range check every constructor and config loader uses, so every message has the same
    form: ``"limit_db_spl=130 is not a number in 60..118 dB SPL"``.
    """
    suffix = f" {unit}" if unit else ""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not np.isfinite(value)
        or not low <= value <= high
    ):
        raise ConfigError(f"{name}={value!r} is not a number in {low:g}..{high:g}{suffix}")
    return float(value)


class Processor(ABC):
    """Base class of a streaming processor.

    Parameters
    ----------
    sample_rate : int
        Sample rate in Hz, one of :data:`SUPPORTED_SAMPLE_RATES` unless a subclass allows more.
    block_size : int
        Largest number of frames one :meth:`process` call receives.
    channels : int
        Number of input channels. ``output_channels`` defaults to the same; a processor that
        changes the channel count (a beamformer, a masking generator) sets it.

    Notes
    -----
    Subclasses allocate everything in ``__init__`` and implement :meth:`_process`, which must
    not allocate. :attr:`latency_samples` is the delay, in samples, between an input sample and
    the output sample it produces (the algorithmic latency, excluding block buffering).
    """

    #: Sample rates the subclass accepts; override to narrow or widen.
    sample_rates: tuple[int, ...] = SUPPORTED_SAMPLE_RATES

    def __init__(self, sample_rate: int, block_size: int, channels: int = 1) -> None:
        self.sample_rate = check_sample_rate(sample_rate, self.sample_rates)
        self.block_size = check_block_size(block_size)
        self.channels = check_channels(channels)
        self.output_channels = self.channels

    @property
    def name(self) -> str:
        """Short name used in latency reports."""
        return type(self).__name__

    @property
    def latency_samples(self) -> int:
        """Algorithmic delay from input to output, in samples (0 unless the subclass delays)."""
        return 0

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        """Process one block into ``out``. Real-time safe: no allocation, no logging, no I/O.

        Parameters
        ----------
        block : ndarray, shape (frames, channels), float32
            Input samples, ``1 <= frames <= block_size``. Not modified.
        out : ndarray, shape (frames, output_channels), float32
            Written in place. May be the same array as ``block`` only for processors whose
            ``channels == output_channels`` and that say so in their docstring.
        """
        self._process(block, out)

    @abstractmethod
    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        """The subclass's processing; same contract as :meth:`process`."""

    def reset(self) -> None:  # noqa: B027 - a stateless processor has nothing to reset
        """Return to the freshly built state (clear filters, delay lines, estimators)."""

    def check_io(self, block: np.ndarray, out: np.ndarray) -> None:
        """Validate a block and its output array once, outside the hot path.

        Raises
        ------
        ConfigError
            If the dtype, shape or channel count does not match the processor.
        """
        for label, array, width in (
            ("block", block, self.channels),
            ("out", out, self.output_channels),
        ):
            if not isinstance(array, np.ndarray):
                raise ConfigError(f"{label} must be a numpy array, got {type(array).__name__}")
            if array.dtype != np.float32:
                raise ConfigError(f"{label}.dtype={array.dtype} is not float32")
            if array.ndim != 2 or array.shape[1] != width:
                raise ConfigError(f"{label}.shape={array.shape} is not (frames, {width})")
            if not 1 <= array.shape[0] <= self.block_size:
                raise ConfigError(
                    f"{label} has {array.shape[0]} frames; allowed 1..block_size={self.block_size}"
                )
        if block.shape[0] != out.shape[0]:
            raise ConfigError(f"block has {block.shape[0]} frames but out has {out.shape[0]}")

    def __repr__(self) -> str:
        return (
            f"{self.name}(sample_rate={self.sample_rate}, block_size={self.block_size}, "
            f"channels={self.channels})"
        )


class Gain(Processor):
    """A fixed gain in dB: the simplest processor, used by tests and as a trim stage.

    Real-time safe. ``block`` and ``out`` may be the same array. NaN and Inf input samples come
    out as 0 and the output is clamped to +-:data:`SAMPLE_BOUND`, so it is always finite.
    """

    def __init__(self, sample_rate: int, block_size: int, channels: int = 1, gain_db: float = 0.0):
        super().__init__(sample_rate, block_size, channels)
        self.gain_db = check_number("gain_db", gain_db, -120.0, 40.0, "dB")
        self._gain = np.float32(10.0 ** (gain_db / 20.0))
        # Compile (or load from cache) now, never while audio runs.
        warm = np.zeros((1, self.channels), np.float32)
        bounded_gain_kernel(warm, warm, self._gain, SAMPLE_BOUND)

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        bounded_gain_kernel(out, block, self._gain, SAMPLE_BOUND)


class Delay(Processor):
    """An integer delay line of ``delay_samples`` per channel (latency compensation, tests).

    Real-time safe. ``block`` and ``out`` may be the same array. NaN and Inf input samples come
    out (delayed) as 0 and finite ones are clamped to +-:data:`SAMPLE_BOUND`.
    """

    def __init__(
        self, sample_rate: int, block_size: int, channels: int = 1, delay_samples: int = 0
    ):
        super().__init__(sample_rate, block_size, channels)
        if (
            isinstance(delay_samples, bool)
            or not isinstance(delay_samples, int | np.integer)
            or not (0 <= delay_samples <= 10 * self.sample_rate)
        ):
            raise ConfigError(
                f"delay_samples={delay_samples!r} is not an integer in 0..{10 * self.sample_rate}"
            )
        self.delay_samples = int(delay_samples)
        # A ring of delay + block frames, so one block can be written before it is read.
        self._ring = np.zeros((self.delay_samples + self.block_size, self.channels), np.float32)
        self._write = 0
        # Compile (or load from cache) now, never while audio runs; zeros leave the ring as built.
        warm = np.zeros((1, self.channels), np.float32)
        delay_kernel(warm, self._ring, warm, 0, self.delay_samples)

    @property
    def latency_samples(self) -> int:
        return self.delay_samples

    def reset(self) -> None:
        self._ring.fill(0.0)
        self._write = 0

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        self._write = delay_kernel(out, self._ring, block, self._write, self.delay_samples)
