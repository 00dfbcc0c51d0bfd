"""Where a pipeline meets a backend: the audio callback and the offline runners.

:class:`PipelineCallback` is the one callback every backend drives — a PortAudio stream
(:mod:`audio_engine.io.device`) or the simulated clock (:mod:`audio_engine.io.sim`). It copies
the device's block into a preallocated buffer, runs the pipeline into ``outdata`` in place, and
counts PortAudio status flags; it never allocates, logs or blocks.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from audio_engine.errors import ConfigError
from audio_engine.io.files import FileSink, FileSource
from audio_engine.io.sim import ArraySink, ArraySource, SimulatedClock
from audio_engine.latency import LatencyReport
from audio_engine.pipeline import Pipeline


class PipelineCallback:
    """A sounddevice-style callback that runs ``pipeline`` on every block.

    Parameters
    ----------
    pipeline : Pipeline
        Built for the stream's sample rate and block size.
    tap : callable, optional
        ``tap(outdata)`` called after processing (real-time safe consumers only, e.g. a ring
        buffer writer for an input-only stream).

    Notes
    -----
    Input-only streams (``outdata is None``) process into an internal buffer; output-only
    streams (``indata is None``) feed the pipeline silence, as a generator expects.
    """

    def __init__(self, pipeline: Pipeline, tap: Callable[[np.ndarray], None] | None = None):
        self.pipeline = pipeline
        self.tap = tap
        self._silence = np.zeros((pipeline.block_size, pipeline.channels), np.float32)
        self._in = np.zeros((pipeline.block_size, pipeline.channels), np.float32)
        self._out = np.zeros((pipeline.block_size, pipeline.output_channels), np.float32)
        self.faults = 0  # exceptions caught in the callback (a bug, never expected)

    def __call__(self, indata, outdata, frames, time_info, status) -> None:
        meter = self.pipeline.meter
        if status:
            meter.count_status(
                bool(getattr(status, "input_overflow", False)),
                bool(getattr(status, "output_underflow", False)),
                bool(
                    getattr(status, "input_underflow", False)
                    or getattr(status, "output_overflow", False)
                ),
            )
        if indata is None:
            src = self._silence[:frames]
        else:
            # PortAudio's buffer may be a different width if the device has more channels than
            # the pipeline takes; copy only what the pipeline takes.
            src = self._in[:frames]
            src[:] = indata[:, : self.pipeline.channels]
        dst = self._out[:frames] if outdata is None else outdata
        try:
            self.pipeline.process(src, dst)
        except Exception:  # a processor bug must never reach PortAudio: output silence
            self.faults += 1
            dst.fill(0.0)
        if self.tap is not None:
            self.tap(dst)


def run_array(
    pipeline: Pipeline,
    data: np.ndarray | None,
    frames: int | None = None,
    realtime: bool = False,
    compensate_latency: bool = False,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Run an array through ``pipeline`` on the simulated clock and return the output.

    Parameters
    ----------
    pipeline : Pipeline
        The pipeline; its meter records every block.
    data : ndarray (frames, channels) or None
        Input; ``None`` feeds silence (generators), then ``frames`` is required.
    frames : int, optional
        Frames to produce; defaults to the input length.
    realtime : bool
        Pace blocks to the wall clock.
    compensate_latency : bool
        Feed ``latency_samples`` extra frames and drop the first ``latency_samples`` outputs, so
        output sample ``n`` lines up with input sample ``n`` (file processing).
    """
    if data is None and frames is None:
        raise ValueError("run_array needs data or frames")
    source = ArraySource(data) if data is not None else None
    if source is not None:
        shape = np.shape(data)
        if source.data.ndim != 2:
            raise ConfigError(f"data.shape={shape} is not (frames,) or (frames, channels)")
        if source.data.shape[1] != pipeline.channels:
            raise ConfigError(
                f"data.shape={shape}: data has {source.data.shape[1]} channels but the "
                f"pipeline takes {pipeline.channels}"
            )
    if frames is None:
        frames = source.data.shape[0]
    delay = pipeline.latency_samples if compensate_latency else 0
    sink = ArraySink(frames + delay, pipeline.output_channels)
    clock = SimulatedClock(
        PipelineCallback(pipeline),
        pipeline.sample_rate,
        pipeline.block_size,
        pipeline.channels,
        pipeline.output_channels,
        realtime=realtime,
    )
    clock.run(frames + delay, source, sink, progress)
    return sink.data[delay:]


def run_file(
    pipeline: Pipeline,
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    realtime: bool = False,
    compensate_latency: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> LatencyReport:
    """Stream an audio file through ``pipeline`` into another file, block by block.

    Output keeps the input's sample rate; with ``compensate_latency`` the output is aligned with
    the input and has the same length. Returns the latency report.

    ``out_path`` is written as a temporary file in its folder and moved onto ``out_path`` only
    when the whole input has been processed: if the input turns out damaged mid-stream, or the
    run is interrupted, an existing ``out_path`` is left as it was and nothing else remains.

    Raises
    ------
    AudioFileError
        If the input cannot be read (at the start or mid-stream) or the output written, naming
        the file.
    ConfigError
        If the file's channel count is not the pipeline's.
    """
    source = FileSource(in_path, pipeline.block_size)
    try:
        if source.channels != pipeline.channels:
            raise ConfigError(
                f"'{in_path}' has {source.channels} channels but the pipeline takes "
                f"{pipeline.channels}"
            )
        total = source.frames
        delay = pipeline.latency_samples if compensate_latency else 0
        sink = FileSink(
            out_path, pipeline.sample_rate, pipeline.output_channels, frames=total, atomic=True
        )
    except BaseException:
        source.close()
        raise
    skip = [delay]

    def trimmed_sink(block: np.ndarray) -> None:
        if skip[0] >= block.shape[0]:
            skip[0] -= block.shape[0]
            return
        sink(block[skip[0] :])
        skip[0] = 0

    clock = SimulatedClock(
        PipelineCallback(pipeline),
        pipeline.sample_rate,
        pipeline.block_size,
        pipeline.channels,
        pipeline.output_channels,
        realtime=realtime,
    )
    try:
        clock.run(
            total + delay,
            source,
            trimmed_sink,
            (lambda done: progress(min(done, total), total)) if progress else None,
        )
    except BaseException:  # damaged input, a full disk, Ctrl-C: keep the old OUT, no debris
        sink.discard()
        raise
    finally:
        source.close()
    sink.close()
    return pipeline.report()
