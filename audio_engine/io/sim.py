"""A simulated real-time clock that drives the audio callback path headless.

It calls the same ``callback(indata, outdata, frames, time_info, status)`` a PortAudio stream
would, block after block, either as fast as possible or paced to the wall clock (to test
deadline behaviour without a sound card). Input blocks come from a *source* and output blocks
go to a *sink*, both simple callables, so arrays and files stream through the same path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from audio_engine.errors import ConfigError


@dataclass
class SimulatedStatus:
    """Stands in for ``sounddevice.CallbackFlags``: a simulated clock never over- or underruns."""

    input_overflow: bool = False
    output_underflow: bool = False
    input_underflow: bool = False
    output_overflow: bool = False
    priming_output: bool = False

    def __bool__(self) -> bool:
        return False


class ArraySource:
    """Feeds blocks from an array of shape (frames, channels); silence after its end."""

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        if self.data.ndim == 1:
            self.data = self.data[:, None]
        self.position = 0

    @property
    def frames(self) -> int:
        return self.data.shape[0]

    def __call__(self, block: np.ndarray) -> None:
        n = block.shape[0]
        avail = max(0, min(n, self.frames - self.position))
        block[:avail] = self.data[self.position : self.position + avail]
        block[avail:] = 0.0
        self.position += n


class ArraySink:
    """Collects output blocks into one preallocated array of ``frames`` x ``channels``."""

    def __init__(self, frames: int, channels: int):
        self.data = np.zeros((frames, channels), np.float32)
        self.position = 0

    def __call__(self, block: np.ndarray) -> None:
        n = min(block.shape[0], self.data.shape[0] - self.position)
        if n > 0:
            self.data[self.position : self.position + n] = block[:n]
        self.position += block.shape[0]


class SimulatedClock:
    """Drive an audio callback with blocks from a source into a sink.

    Parameters
    ----------
    callback : callable
        ``callback(indata, outdata, frames, time_info, status)`` as in sounddevice.
    sample_rate : int
        Hz, for pacing and the ``time_info`` timestamps.
    block_size : int
        Frames per callback.
    input_channels, output_channels : int
        Shapes of ``indata`` and ``outdata``; 0 makes that side ``None`` (output- or input-only).
    realtime : bool
        If true, each callback starts at its wall-clock time (``block_size / sample_rate`` apart),
        as a device would call it; otherwise blocks follow each other as fast as possible.
    """

    def __init__(
        self,
        callback: Callable,
        sample_rate: int,
        block_size: int,
        input_channels: int,
        output_channels: int,
        realtime: bool = False,
    ):
        if block_size < 1:
            raise ConfigError(f"block_size={block_size!r} is not an integer >= 1")
        if input_channels < 0 or output_channels < 0 or input_channels + output_channels == 0:
            raise ConfigError(
                f"input_channels={input_channels}, output_channels={output_channels}: "
                "need at least one side with >= 1 channel"
            )
        self.callback = callback
        self.sample_rate = int(sample_rate)
        self.block_size = int(block_size)
        self.realtime = bool(realtime)
        self._in = np.zeros((block_size, input_channels), np.float32) if input_channels else None
        self._out = np.zeros((block_size, output_channels), np.float32) if output_channels else None
        self.status = SimulatedStatus()
        self.stopped = False
        self.late_starts = 0  # in realtime mode: callbacks that could not start on time

    def stop(self) -> None:
        """Ask :meth:`run` to end after the current block (thread-safe, from any thread)."""
        self.stopped = True

    def run(
        self,
        frames: int,
        source: Callable | None = None,
        sink: Callable | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Run ``frames`` frames through the callback; return the frames processed.

        ``source(block)`` fills each input block in place (silence if no source); ``sink(block)``
        receives each output block (a view, valid until the next block). ``progress(frames_done)``
        is called every ~0.5 s of audio.
        """
        done = 0
        period = self.block_size / self.sample_rate
        t_start = time.perf_counter()
        next_progress = 0
        progress_every = self.sample_rate // 2
        self.stopped = False
        while done < frames and not self.stopped:
            n = min(self.block_size, frames - done)
            indata = None if self._in is None else self._in[:n]
            outdata = None if self._out is None else self._out[:n]
            if indata is not None:
                if source is not None:
                    source(indata)
                else:
                    indata.fill(0.0)
            if self.realtime:
                due = t_start + done / self.sample_rate
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -period:
                    self.late_starts += 1
            t = done / self.sample_rate
            time_info = {"inputBufferAdcTime": t, "outputBufferDacTime": t, "currentTime": t}
            self.callback(indata, outdata, n, time_info, self.status)
            if outdata is not None and sink is not None:
                sink(outdata)
            done += n
            if progress is not None and done >= next_progress:
                progress(done)
                next_progress = done + progress_every
        if progress is not None:
            progress(done)
        return done
