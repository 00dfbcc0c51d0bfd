"""Latency benchmarks of the real pipelines: the engine behind ``audio-engine bench``.

The bench runs the headset and masking pipelines (:mod:`audio_engine.pipelines`) on the
simulated clock (:func:`audio_engine.engine.run_array`) with realistic input from the simulated
office, or on a sound device, and turns each pipeline's :class:`~audio_engine.latency.LatencyReport`
into one JSON document with a stable schema (:data:`SCHEMA`, documented in docs/benchmarks.md)::

    {"schema": "audio_engine.bench/1", "sample_rate": 48000, "block_size": 480,
     "seconds": 10.0, "zones": 32, "channels": 1, "backend": "simulated clock",
     "machine": {...machine_info()...},
     "headset": {...LatencyReport.to_dict()...}, "masking": {...},
     "compare": {...} (with --compare), "roundtrip": {...} (with --roundtrip)}

Every pipeline entry carries at least :data:`PIPELINE_KEYS`. It also measures round-trip
latency through a loopback (:func:`measure_roundtrip`) and times the installed peer noise
suppressors per 10 ms frame on the same audio (:func:`compare_peers`).

Nothing here is on the audio path except the callbacks the pipelines already own; the
functions themselves allocate freely and are not real-time safe.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from audio_engine.dsp.base import (
    MAX_BLOCK_SIZE,
    MAX_CHANNELS,
    SUPPORTED_SAMPLE_RATES,
    Processor,
)
from audio_engine.engine import run_array
from audio_engine.errors import ConfigError, DeviceError
from audio_engine.latency import LatencyReport, machine_info
from audio_engine.pipeline import Pipeline

#: Identifier and version of the bench JSON; bumped only when a documented key changes meaning.
SCHEMA = "audio_engine.bench/1"

#: Keys every pipeline entry of the bench JSON has (a subset of ``LatencyReport.to_dict()``).
PIPELINE_KEYS = (
    "p50_us",
    "p95_us",
    "p99_us",
    "p999_us",
    "max_us",
    "deadline_misses",
    "realtime_factor",
    "algorithmic_latency_ms",
)

#: Shortest and longest bench run, in seconds of audio.
MIN_SECONDS = 0.1
MAX_SECONDS = 24 * 3600.0

#: Length of a "frame" in the peer comparison: WebRTC NS, SpeexDSP and RNNoise all work on
#: 10 ms frames (WebRTC APM's fixed chunk; RNNoise's FRAME_SIZE of 480 samples at 48 kHz).
COMPARE_FRAME_S = 0.010


def check_settings(
    seconds: float, sample_rate: int, block_size: int, zones: int, channels: int = 1
) -> None:
    """Check the bench's settings once, naming the command-line flag of a bad one.

    Raises
    ------
    ConfigError
        If a value is out of range; the message names the flag, the value and what is allowed.
    """
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not MIN_SECONDS <= seconds <= MAX_SECONDS
    ):
        raise ConfigError(f"--seconds={seconds!r} is not in {MIN_SECONDS:g}..{MAX_SECONDS:g}")
    if isinstance(sample_rate, bool) or sample_rate not in SUPPORTED_SAMPLE_RATES:
        raise ConfigError(
            f"--rate={sample_rate!r} is not supported; allowed: "
            f"{', '.join(str(r) for r in SUPPORTED_SAMPLE_RATES)} Hz"
        )
    for flag, value, top in (
        ("--block", block_size, MAX_BLOCK_SIZE),
        ("--zones", zones, MAX_CHANNELS),
        ("--channels", channels, MAX_CHANNELS),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ConfigError(f"{flag}={value!r} is not an integer in 1..{top}")


def office_headset_mix(frames: int, sample_rate: int, channels: int = 1, seed: int = 1):
    """What a headset boom microphone hears in the open office: an agent's speech over babble,
    HVAC, keyboard clicks and the masking noise.

    Parameters
    ----------
    frames : int
        Length in samples.
    sample_rate : int
        Hz.
    channels : int
        Microphone channels; each gets its own noise (same speech), as separate headsets would.
    seed : int
        Seed of the office noises.

    Returns
    -------
    ndarray, shape (frames, channels), float32
        Speech peaks near 0.25 of full scale (the packaged recording); noise levels relative to
        it follow the demo's office (babble 8 dB below the agent, HVAC 18, keyboard 15, masking 20).
    """
    from audio_engine.office.noise import headset_room_noise
    from audio_engine.office.speech import demo_speech, loop_with_pauses

    # A second of silence between repeats, so the suppressor also sees noise-only stretches.
    speech = loop_with_pauses(demo_speech(sample_rate), frames, sample_rate)
    out = np.empty((frames, channels), np.float32)
    for c in range(channels):
        out[:, c] = speech + headset_room_noise(
            speech, np.random.default_rng(seed + 7919 * c), sample_rate
        )
    return out


def run_on_clock(
    pipeline: Pipeline, data: np.ndarray | None, frames: int, realtime: bool = False
) -> LatencyReport:
    """Run ``frames`` frames through ``pipeline`` on the simulated clock; return its report.

    ``data`` is the input (frames, channels), or ``None`` for a generator (fed silence). The
    pipeline's meter is reset first, so the report covers this run only, every block of it,
    first block included (kernels must already be warm, as the processor protocol requires).
    """
    pipeline.meter.reset()
    run_array(pipeline, data, frames=frames, realtime=realtime)
    return pipeline.report()


def run_on_device(
    pipeline: Pipeline, seconds: float, device, input_device=None, generator: bool = False
) -> LatencyReport:
    """Run ``pipeline`` on a sound device for ``seconds``; return its report with PortAudio's
    reported latencies and the xrun flags it counted.

    A processing pipeline (the headset path) runs duplex (``input_device`` in, ``device`` out,
    see :class:`audio_engine.io.device.DeviceStream`); a ``generator`` (the masking path, whose
    input is ignored) runs output-only with one channel per output (zone).

    Raises
    ------
    DeviceError
        If PortAudio is missing, no device matches, or the device refuses the settings.
    """
    from audio_engine.io.device import DeviceStream

    pipeline.meter.reset()
    stream = DeviceStream(
        pipeline,
        "output" if generator else "duplex",
        input_device=device if input_device is None else input_device,
        output_device=device,
    )
    with stream:
        time.sleep(seconds)
    return stream.report()


def run_pipelines(
    names,
    seconds: float,
    sample_rate: int,
    block_size: int,
    zones: int,
    channels: int = 1,
    seed: int = 1,
    realtime: bool = False,
    device=None,
    input_device=None,
    progress: Callable[[str], None] | None = None,
    builders: Mapping[str, Callable[[], Pipeline]] | None = None,
) -> tuple[dict[str, Pipeline], dict[str, LatencyReport]]:
    """Build and run each named pipeline; return the pipelines (for plots) and their reports.

    Parameters
    ----------
    names : sequence of {"headset", "masking"}
        Pipelines to run, in order.
    seconds, sample_rate, block_size, zones, channels
        The bench settings (checked by :func:`check_settings`).
    seed : int
        Seed of the office input of the headset path.
    realtime : bool
        On the simulated clock, pace blocks to the wall clock.
    device, input_device : str or int, optional
        Run on this sound device instead of the simulated clock.
    progress : callable, optional
        ``progress(message)`` before each pipeline is built and run.
    builders : mapping, optional
        ``name -> callable() -> Pipeline`` replacing the factories of
        :mod:`audio_engine.pipelines` (tests use it with simple stages).
    """
    from audio_engine import pipelines as factories

    say = progress or (lambda message: None)
    default_builders = {
        factories.HEADSET: lambda: factories.build_headset_pipeline(
            sample_rate, block_size, channels
        ),
        factories.MASKING: lambda: factories.build_masking_pipeline(zones, sample_rate, block_size),
    }
    default_builders.update(builders or {})
    frames = max(1, int(round(seconds * sample_rate)))
    built, reports = {}, {}
    for name in names:
        if name not in default_builders:
            raise ConfigError(f"pipeline {name!r} is not one of {sorted(default_builders)}")
        say(f"building the {name} pipeline (compiles its kernels on first use)")
        pipeline = default_builders[name]()
        built[name] = pipeline
        if device is not None:
            say(f"running {name} on device {device!r} for {seconds:g} s")
            reports[name] = run_on_device(
                pipeline, seconds, device, input_device, generator=name == factories.MASKING
            )
            continue
        data = None
        if name == factories.HEADSET:
            say("making the office input (speech, babble, HVAC, keyboard)")
            data = office_headset_mix(frames, sample_rate, pipeline.channels, seed)
        say(f"running {name}: {frames} frames on the simulated clock")
        reports[name] = run_on_clock(pipeline, data, frames, realtime)
    return built, reports


def block_times_us(pipeline: Pipeline) -> np.ndarray:
    """Processing time of each recorded block of ``pipeline``, in µs, oldest first (its most
    recent ``capacity`` blocks once the meter's ring has wrapped)."""
    return pipeline.meter.block_times_us()


def bench_document(
    reports: Mapping[str, LatencyReport],
    seconds: float,
    zones: int,
    channels: int,
    backend: str = "simulated clock",
    extra: Mapping | None = None,
) -> dict:
    """The bench JSON document (schema :data:`SCHEMA`) for reports of one sample rate and block.

    Raises
    ------
    ConfigError
        If the reports disagree on sample rate or block size (one document, one setting).
    """
    if not reports:
        raise ConfigError("a bench document needs at least one pipeline report, got none")
    first = next(iter(reports.values()))
    for name, report in reports.items():
        if (report.sample_rate, report.block_size) != (first.sample_rate, first.block_size):
            raise ConfigError(
                f"pipeline {name!r} ran at {report.sample_rate} Hz / block {report.block_size}, "
                f"the others at {first.sample_rate} Hz / block {first.block_size}"
            )
    document = {
        "schema": SCHEMA,
        "sample_rate": first.sample_rate,
        "block_size": first.block_size,
        "seconds": float(seconds),
        "zones": int(zones),
        "channels": int(channels),
        "backend": backend,
        "machine": machine_info(),
    }
    for name, report in reports.items():
        document[name] = report.to_dict()
    document.update(extra or {})
    return document


def verdict_text(reports: Mapping[str, LatencyReport]) -> str:
    """One line per pipeline: did every block meet its deadline, and how close the worst came.

    The answer an engineer wants before a busy morning; the figures are the reports' own.
    """
    lines = []
    for name, r in reports.items():
        worst = 100.0 * r.max_us / r.deadline_us if r.deadline_us else 0.0
        state = "kept every deadline" if r.deadline_misses == 0 else "MISSED deadlines"
        lines.append(
            f"{name}: {state} — {r.deadline_misses} of {r.blocks} blocks late, worst block "
            f"{worst:.1f} % of the {r.deadline_us:.0f} µs deadline, {100.0 * r.realtime_factor:.2f} "
            "% of a core on average"
        )
    return "\n".join(lines)


def write_json(path: str | os.PathLike, document: Mapping) -> None:
    """Write the bench document to ``path`` (folders created) as indented JSON."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(document, indent=2, default=float) + "\n")


def plot_histograms(
    pipelines: Mapping[str, Pipeline], reports: Mapping[str, LatencyReport], path
) -> None:
    """Save a PNG with one histogram of per-block processing time per pipeline.

    Each panel marks p50, p99, max and the block deadline, and counts the misses; times are on
    a log axis because the tail (scheduler preemption) is orders of magnitude above p50.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(pipelines)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 3.2 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        times = block_times_us(pipelines[name])
        report = reports[name]
        times = times[times > 0] if np.any(times > 0) else np.ones(1)
        low, high = max(times.min(), 1e-3), max(times.max(), times.min() * 1.01)
        bins = np.geomspace(low, high, 80)
        # The deadline is always on the axis, so the distance to it reads off the plot.
        ax.axvline(report.deadline_us, color="black", label=f"deadline {report.deadline_us:.0f} µs")
        ax.set_xlim(low / 1.2, max(high, report.deadline_us) * 1.2)
        ax.hist(times, bins=bins, color="#4477aa")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        for label, value, colour in (
            ("p50", report.p50_us, "#228833"),
            ("p99", report.p99_us, "#ccbb44"),
            ("max", report.max_us, "#ee6677"),
        ):
            ax.axvline(value, color=colour, linestyle="--", label=f"{label} {value:.1f} µs")
        ax.set_title(
            f"{name}: {report.sample_rate} Hz, block {report.block_size}, {report.blocks} blocks "
            f"— deadline {report.deadline_us:.0f} µs, {report.deadline_misses} misses"
        )
        ax.set_xlabel("processing time per block (µs)")
        ax.set_ylabel("blocks")
        ax.legend(loc="upper right")
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, format="png", dpi=100)
    plt.close(fig)


# -- peers ----------------------------------------------------------------------------------


def _time_calls(call: Callable[[int], object], count: int) -> np.ndarray:
    """Time ``call(i)`` for i in range(count); return µs per call."""
    times_ns = np.zeros(count, np.int64)
    clock = time.perf_counter_ns
    for i in range(count):
        t0 = clock()
        call(i)
        times_ns[i] = clock() - t0
    return times_ns.astype(np.float64) / 1e3


def _int16_frames(signal: np.ndarray, frame: int) -> list[bytes]:
    """``signal`` (mono float) cut into whole frames of 16-bit PCM bytes."""
    count = len(signal) // frame
    pcm = np.clip(np.round(signal[: count * frame] * 32767.0), -32768, 32767).astype("<i2")
    return [pcm[i * frame : (i + 1) * frame].tobytes() for i in range(count)]


def _peer_webrtc(signal_16k: np.ndarray) -> np.ndarray:
    from webrtc_noise_gain import AudioProcessor

    # auto_gain 0 dBFS (off), noise suppression level 2 of 0..4 ("high", WebRTC's default
    # setting in browsers' getUserMedia noiseSuppression).
    processor = AudioProcessor(0, 2)
    frames = _int16_frames(signal_16k, 160)
    return _time_calls(lambda i: processor.Process10ms(frames[i]), len(frames))


def _peer_speex(signal_16k: np.ndarray) -> np.ndarray:
    from speexdsp_ns import NoiseSuppression

    suppressor = NoiseSuppression.create(160, 16000)
    frames = _int16_frames(signal_16k, 160)
    return _time_calls(lambda i: suppressor.process(frames[i]), len(frames))


def _peer_rnnoise(signal_48k: np.ndarray) -> np.ndarray:
    import ctypes

    from pyrnnoise import rnnoise

    state = rnnoise.create()
    try:
        frame = rnnoise.FRAME_SIZE
        count = len(signal_48k) // frame
        # RNNoise takes float samples on the 16-bit scale; convert all frames before timing so
        # only the C call is timed, as for the other peers.
        data = np.ascontiguousarray(signal_48k[: count * frame] * 32767.0, dtype=np.float32)
        buffer = np.zeros(frame, np.float32)
        pointer = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        process = rnnoise.lib.rnnoise_process_frame

        def call(i: int) -> None:
            buffer[:] = data[i * frame : (i + 1) * frame]
            process(state, pointer, pointer)

        return _time_calls(call, count)
    finally:
        rnnoise.destroy(state)


#: The peers: (key, display name, pip package, native rate, timing function).
PEERS = (
    ("webrtc_ns", "WebRTC NS", "webrtc-noise-gain", 16000, _peer_webrtc),
    ("speexdsp", "SpeexDSP", "speexdsp-ns", 16000, _peer_speex),
    ("rnnoise", "RNNoise", "pyrnnoise", 48000, _peer_rnnoise),
)


def _summary(times_us: np.ndarray) -> dict:
    return {
        "frames": int(times_us.size),
        "p50_us": float(np.percentile(times_us, 50)),
        "p99_us": float(np.percentile(times_us, 99)),
        "mean_us": float(times_us.mean()),
        "max_us": float(times_us.max()),
    }


def compare_peers(
    seconds: float,
    seed: int = 1,
    build_headset: Callable[[int, int], Pipeline] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Time our headset pipeline and each installed peer per 10 ms frame on the same audio.

    The office mix (:func:`office_headset_mix`) is made once at 48 kHz and resampled to 16 kHz
    for the peers that only run there (WebRTC NS via webrtc-noise-gain, SpeexDSP via
    speexdsp-ns); RNNoise runs at its native 48 kHz. Our pipeline runs at each peer's rate with
    10 ms blocks, so every ratio compares the same work on the same samples.

    Returns
    -------
    dict
        ``{"frame_ms": 10.0, "ours": {rate: summary}, "peers": {key: {"name", "package",
        "installed", "sample_rate", summary..., "ratio_p50": peer p50 / our p50,
        "ratio_mean"} or {"installed": False, "error": ...}}}``. A ratio above 1 means the peer
        takes longer than our pipeline per frame.
    """
    from audio_engine.office.speech import resample
    from audio_engine.pipelines import build_headset_pipeline

    build_headset = build_headset or build_headset_pipeline
    say = progress or (lambda message: None)
    frames_48k = int(seconds * 48000)
    signal_48k = office_headset_mix(frames_48k, 48000, 1, seed)[:, 0]
    signals = {48000: signal_48k, 16000: resample(signal_48k, 48000, 16000)}
    ours = {}
    for rate, signal in signals.items():
        say(f"timing our headset pipeline at {rate} Hz")
        block = int(round(rate * COMPARE_FRAME_S))
        pipeline = build_headset(rate, block)
        report = run_on_clock(pipeline, signal[:, None], len(signal))
        ours[rate] = _summary(block_times_us(pipeline))
        ours[rate]["sample_rate"] = rate
        ours[rate]["deadline_misses"] = report.deadline_misses
    peers = {}
    for key, name, package, rate, timer in PEERS:
        entry = {"name": name, "package": package, "sample_rate": rate}
        try:
            say(f"timing {name}")
            times = timer(signals[rate])
        except ImportError as exc:
            entry.update(installed=False, error=f"not installed (pip install {package}): {exc}")
        else:
            entry.update(installed=True, **_summary(times))
            entry["ratio_p50"] = entry["p50_us"] / max(ours[rate]["p50_us"], 1e-9)
            entry["ratio_mean"] = entry["mean_us"] / max(ours[rate]["mean_us"], 1e-9)
        peers[key] = entry
    return {
        "frame_ms": 1e3 * COMPARE_FRAME_S,
        "seconds": float(seconds),
        "ours": {str(rate): summary for rate, summary in ours.items()},
        "peers": peers,
        "note": "peer times are the library call alone on pre-converted 16-bit frames; ours "
        "is the whole pipeline block as timed by its latency meter",
    }


def compare_text(result: Mapping) -> str:
    """The peer comparison as a readable table."""
    lines = [
        f"Time per {result['frame_ms']:.0f} ms frame, same office audio "
        f"({result['seconds']:g} s), ratio = peer / ours (above 1: ours is faster)",
        f"  {'':<28}{'rate':>7}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}{'ratio p50':>11}",
    ]
    for rate, o in result["ours"].items():
        lines.append(
            f"  {'audio_engine headset':<28}{rate:>7}{o['p50_us']:10.1f}{o['p99_us']:10.1f}"
            f"{o['mean_us']:10.1f}{'1.00':>11}"
        )
    for peer in result["peers"].values():
        if not peer["installed"]:
            lines.append(f"  {peer['name']:<28}{peer['sample_rate']:>7}  {peer['error']}")
            continue
        lines.append(
            f"  {peer['name']:<28}{peer['sample_rate']:>7}{peer['p50_us']:10.1f}"
            f"{peer['p99_us']:10.1f}{peer['mean_us']:10.1f}{peer['ratio_p50']:11.2f}"
        )
    lines.append(f"  ({result['note']})")
    return "\n".join(lines)


# -- devices --------------------------------------------------------------------------------


def click_length(sample_rate: int) -> int:
    """Samples in one click of :func:`click_train`: 1 ms, at least 8."""
    return max(8, int(0.001 * sample_rate))


def click_train(sample_rate: int, clicks: int, period_s: float) -> tuple[np.ndarray, np.ndarray]:
    """A train of ``clicks`` short clicks ``period_s`` apart, and each click's onset sample.

    Each click is a 1 ms Hann-windowed burst of a seeded ±1 sequence at -6 dBFS peak: broadband
    (so any loopback passes it) and with a sharp autocorrelation peak (so its return is
    located to the sample by cross-correlation).
    """
    length = click_length(sample_rate)
    sign = np.where(np.random.default_rng(7).integers(0, 2, length) > 0, 1.0, -1.0)
    click = 0.5 * sign * np.hanning(length)
    period = int(period_s * sample_rate)
    onsets = period // 2 + period * np.arange(clicks)
    train = np.zeros(period * clicks + period, np.float32)
    for onset in onsets:
        train[onset : onset + length] = click
    return train, onsets


def locate_clicks(
    played: np.ndarray, recorded: np.ndarray, onsets: np.ndarray, length: int, max_lag: int
) -> np.ndarray:
    """Delay in samples of each click of ``played`` in ``recorded`` (-1 where none came back).

    Each click (``length`` samples from its onset) is searched within ``max_lag`` samples after its onset by cross-correlation; a
    return counts only if its peak stands 8 times (18 dB) above the median correlation there.
    """
    from scipy.signal import correlate

    lags = np.full(len(onsets), -1, np.int64)
    for k, onset in enumerate(onsets):
        template = played[onset : onset + length].astype(np.float64)
        window = recorded[onset : onset + max_lag + length].astype(np.float64)
        if len(window) < length:
            continue
        score = np.abs(correlate(window, template, mode="valid"))
        peak = int(np.argmax(score))
        if score[peak] > 8.0 * max(float(np.median(score)), 1e-12):
            lags[k] = peak
    return lags


class ClickProbe(Processor):
    """Plays a click train and records what comes back: the round-trip measurement as a stage.

    Mono in, mono out. Block after block it writes the next part of ``train`` to ``out`` (then
    silence) and stores the input block in :attr:`recorded`, aligned sample for sample with
    the train, so a click's return delay is its offset in :attr:`recorded`. :attr:`done` turns
    true once the whole train has been played and recorded. Real-time safe: both buffers are
    allocated here.
    """

    def __init__(self, sample_rate: int, block_size: int, train: np.ndarray):
        super().__init__(sample_rate, block_size, 1)
        self.train = np.ascontiguousarray(train, dtype=np.float32)
        self.recorded = np.zeros(len(self.train), np.float32)
        self._position = 0

    @property
    def done(self) -> bool:
        """Whether the whole train has been played and recorded."""
        return self._position >= len(self.train)

    def reset(self) -> None:
        self.recorded.fill(0.0)
        self._position = 0

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        start = self._position
        n = max(0, min(block.shape[0], len(self.train) - start))
        # Record before writing: `out` may be the same array as `block`.
        self.recorded[start : start + n] = block[:n, 0]
        out[:n, 0] = self.train[start : start + n]
        out[n:] = 0.0
        self._position = start + block.shape[0]


def measure_roundtrip(
    output_device,
    input_device=None,
    sample_rate: int = 48000,
    block_size: int = 480,
    clicks: int = 5,
    period_s: float = 0.5,
) -> dict:
    """Play clicks on ``output_device`` and find them in ``input_device``'s recording.

    With a loopback cable (or a sound server's monitor of the virtual device's sink) every
    click comes back after the round trip: output buffering + DAC + cable + ADC + input
    buffering, plus the ring buffer's hand-over when input and output are different devices.
    The stream is the engine's own :class:`~audio_engine.io.device.DeviceStream`, with its
    default suggested latency, so the figure is the one the live commands get.

    Returns
    -------
    dict
        ``measured_ms`` (median over the clicks that came back), ``per_click_ms``,
        ``clicks_returned``, PortAudio's reported ``reported_input_ms``, ``reported_output_ms``
        and their sum ``reported_total_ms``, and the devices used.

    Raises
    ------
    DeviceError
        If PortAudio is missing, a device cannot be opened, or no click comes back.
    """
    from audio_engine.io.device import DeviceStream

    input_device = output_device if input_device is None else input_device
    train, onsets = click_train(sample_rate, clicks, period_s)
    probe = ClickProbe(sample_rate, block_size, train)
    pipeline = Pipeline([probe], name="roundtrip")
    stream = DeviceStream(
        pipeline, "duplex", input_device=input_device, output_device=output_device
    )
    # Generous: a sound server starved by a busy machine can start a stream seconds late.
    timeout_s = len(train) / sample_rate + 15.0
    with stream:
        deadline = time.monotonic() + timeout_s
        while not probe.done and time.monotonic() < deadline:
            time.sleep(0.05)
    latency_s = stream.device_latency_s
    lags = locate_clicks(
        train, probe.recorded, onsets, click_length(sample_rate), int(period_s * sample_rate) // 2
    )
    returned = lags[lags >= 0]
    if returned.size == 0:
        raise DeviceError(
            f"no click came back from {stream.describe()} "
            f"({'the stream stopped early' if not probe.done else 'silence or noise only'}): "
            "connect a loopback (or record the virtual device's monitor) and check the levels"
        )
    return {
        "devices": stream.describe(),
        "output_device": str(output_device),
        "input_device": str(input_device),
        "sample_rate": sample_rate,
        "block_size": block_size,
        "clicks_played": int(clicks),
        "clicks_returned": int(returned.size),
        "measured_ms": float(1e3 * np.median(returned) / sample_rate),
        "per_click_ms": [float(1e3 * lag / sample_rate) if lag >= 0 else None for lag in lags],
        "reported_input_ms": 1e3 * latency_s["input"],
        "reported_output_ms": 1e3 * latency_s["output"],
        "reported_total_ms": 1e3 * (latency_s["input"] + latency_s["output"]),
    }


def roundtrip_text(result: Mapping) -> str:
    """The round-trip measurement as readable lines."""
    return "\n".join(
        [
            f"Round trip {result['devices']}: "
            f"{result['sample_rate']} Hz, block {result['block_size']}",
            f"  measured (median of {result['clicks_returned']}/{result['clicks_played']} clicks): "
            f"{result['measured_ms']:.2f} ms",
            f"  PortAudio reported: input {result['reported_input_ms']:.2f} ms + output "
            f"{result['reported_output_ms']:.2f} ms = {result['reported_total_ms']:.2f} ms",
        ]
    )
