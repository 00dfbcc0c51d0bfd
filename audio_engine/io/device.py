"""Real-time sound-card streams through PortAudio (sounddevice): input, output and duplex.

A :class:`DeviceStream` runs a :class:`~audio_engine.pipeline.Pipeline` on a device through
the one :class:`~audio_engine.engine.PipelineCallback`. Devices are chosen by index, by a
case-insensitive substring of their PortAudio name, or — on a PulseAudio/PipeWire desktop — by
the name of a server sink or source, which is reached through PortAudio's ALSA ``pulse`` device
with ``PULSE_SINK`` / ``PULSE_SOURCE`` set while the stream opens (the ALSA pulse plugin reads
them then). Every failure a user can cause — no PortAudio library, no device, default device
``-1``, a rate or channel count the device refuses — is a :class:`~audio_engine.errors.DeviceError`
that says what was asked and what exists.

Duplex on one PortAudio device is one PortAudio stream. Input and output on two different
devices (or on one, with ``bridge=True``) are two streams joined by a
:class:`~audio_engine.io.ringbuffer.RingBuffer`: the input callback runs the pipeline and writes
the ring, the output callback only copies from it, so each device keeps its own clock and a
drift between them costs a counted skip or zero-filled block, never a blocked callback.

sounddevice is imported lazily (:func:`import_sounddevice`), so the engine, its tests and
``audio-engine --help`` work on machines without PortAudio.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numba import njit

from audio_engine.errors import ConfigError, DeviceError
from audio_engine.io.ringbuffer import RingBuffer

#: Rates probed for ``audio-engine devices`` (telephony 8/16 kHz to studio 96 kHz).
PROBE_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000, 96000)

#: Default PortAudio suggested latency in seconds, per direction. Chosen by measurement, not
#: by the smallest number that works on an idle machine: through the headless PulseAudio server
#: (ALSA ``pulse`` plugin, one duplex stream, block 480 at 48 kHz, machine shared and loaded),
#: a 0 dB stream between two float32 null sinks was compared sample by sample with its input
#: (``python -m tests.test_soundserver 10 low,0.04,0.05,0.06,0.08``). Corrupted runs: ``'low'``
#: 4/13, 0.04 s and ``'high'`` 3/42, 0.05-0.06 s 0/38, 0.08-0.1 s 15/18 — most of them with no
#: status flag at all (the stream slips samples silently). 0.05 s (PortAudio then reports 60 ms
#: in, 70 ms out) was clean in every run; the engine then adds 70-105 ms of one-way delay.
#: docs/virtual_mic.md explains the trade-off and how to re-measure on a given machine.
DEFAULT_LATENCY_S = 0.05

#: Blocks of hand-over buffer between two devices' streams (input → output bridge).
BRIDGE_BLOCKS = 8

_PULSE_ENV = {"input": "PULSE_SOURCE", "output": "PULSE_SINK"}

Kind = Literal["input", "output"]
Mode = Literal["input", "output", "duplex"]


def import_sounddevice():
    """Import sounddevice, or raise a DeviceError that says how to install what is missing.

    Raises
    ------
    DeviceError
        ``PortAudio library not found`` (the shared library is missing: ``apt-get install
        libportaudio2``) or sounddevice itself is not installed.
    """
    try:
        return importlib.import_module("sounddevice")
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise DeviceError(
            f"PortAudio library not found ({exc}): install it with `apt-get install "
            "libportaudio2` (Debian/Ubuntu) or `brew install portaudio` (macOS); file "
            "processing and the simulated commands work without it"
        ) from None
    except ImportError as exc:
        raise DeviceError(
            f"the sounddevice package is missing ({exc}): `pip install sounddevice`"
        ) from None


@dataclass
class DeviceInfo:
    """One PortAudio device as ``audio-engine devices`` lists it."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: float
    default_low_latency_s: tuple[float, float]
    default_high_latency_s: tuple[float, float]
    is_default_input: bool = False
    is_default_output: bool = False
    input_sample_rates: list[int] = field(default_factory=list)
    output_sample_rates: list[int] = field(default_factory=list)


def list_devices(probe_rates: bool = True) -> list[DeviceInfo]:
    """Every PortAudio device with its channels, host API and (probed) supported rates.

    Raises
    ------
    DeviceError
        If PortAudio is missing.
    """
    sd = import_sounddevice()
    hostapis = sd.query_hostapis()
    default_in, default_out = _default_indices(sd)
    devices = []
    for d in sd.query_devices():
        info = DeviceInfo(
            index=int(d["index"]),
            name=str(d["name"]),
            hostapi=str(hostapis[d["hostapi"]]["name"]),
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_sample_rate=float(d["default_samplerate"]),
            default_low_latency_s=(
                float(d["default_low_input_latency"]),
                float(d["default_low_output_latency"]),
            ),
            default_high_latency_s=(
                float(d["default_high_input_latency"]),
                float(d["default_high_output_latency"]),
            ),
            is_default_input=int(d["index"]) == default_in,
            is_default_output=int(d["index"]) == default_out,
        )
        if probe_rates:
            info.input_sample_rates = _supported_rates(sd, info.index, "input")
            info.output_sample_rates = _supported_rates(sd, info.index, "output")
        devices.append(info)
    return devices


def _default_indices(sd) -> tuple[int, int]:
    """PortAudio's default input and output device indices (-1 means none)."""
    try:
        default_in, default_out = sd.default.device
    except Exception:  # noqa: BLE001 - an uninitialised PortAudio reports no default
        return -1, -1
    return (
        -1 if default_in is None else int(default_in),
        -1 if default_out is None else int(default_out),
    )


def _supported_rates(sd, index: int, kind: Kind) -> list[int]:
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    d = sd.query_devices(index)
    if d[f"max_{kind}_channels"] < 1:
        return []
    rates = []
    for rate in PROBE_SAMPLE_RATES:
        try:
            check(device=index, channels=1, dtype="float32", samplerate=rate)
        except Exception:  # noqa: BLE001 - PortAudioError or ValueError: the rate is refused
            continue
        rates.append(rate)
    return rates


@dataclass
class Endpoint:
    """A resolved device for one direction of a stream.

    ``pulse_name`` is the PulseAudio sink/source the ALSA ``pulse`` device is pointed at while
    the stream opens (``None``: the PortAudio device as it is).
    """

    kind: str
    index: int
    name: str
    hostapi: str
    max_channels: int
    pulse_name: str | None = None

    def describe(self) -> str:
        """``"3 'USB Headset' (ALSA)"`` or ``"0 'pulse' (ALSA) → source 'CleanMic'"``."""
        text = f"{self.index} '{self.name}' ({self.hostapi})"
        if self.pulse_name:
            text += f" → {'source' if self.kind == 'input' else 'sink'} '{self.pulse_name}'"
        return text


def sound_server_names(kind: Kind) -> list[str]:
    """PulseAudio source (input) or sink (output) names, or [] when no server answers."""
    exe = shutil.which("pactl")
    if exe is None:
        return []
    try:
        r = subprocess.run(
            [exe, "list", "short", "sources" if kind == "input" else "sinks"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return []
    if r.returncode != 0:
        return []
    return [row.split("\t")[1] for row in r.stdout.splitlines() if row.count("\t") >= 1]


def resolve_device(spec: int | str | None, kind: Kind) -> Endpoint:
    """Find the device for one direction.

    Parameters
    ----------
    spec : int, str or None
        ``None`` or ``"default"``: PortAudio's default device. An int or a string of digits: a
        device index. Any other string: a case-insensitive substring of a PortAudio device name
        (an exact name wins over substrings); if no PortAudio device matches and a
        PulseAudio/PipeWire server runs, the exact name of one of its sources (input) or sinks
        (output), reached through the ALSA ``pulse`` device.
    kind : {'input', 'output'}
        Which direction the device must support.

    Raises
    ------
    DeviceError
        If PortAudio is missing, there is no default device (PortAudio reports ``-1``), the
        index does not exist or has no channels of ``kind``, no name matches, or several do.
    """
    if kind not in ("input", "output"):
        raise ConfigError(f"kind={kind!r} is not 'input' or 'output'")
    sd = import_sounddevice()
    devices = list(sd.query_devices())
    hostapis = sd.query_hostapis()
    channels_key = f"max_{kind}_channels"

    def endpoint(i: int, pulse_name: str | None = None) -> Endpoint:
        d = devices[i]
        return Endpoint(
            kind,
            i,
            str(d["name"]),
            str(hostapis[d["hostapi"]]["name"]),
            int(d[channels_key]),
            pulse_name,
        )

    def available() -> str:
        listed = [f"{i} '{d['name']}'" for i, d in enumerate(devices) if int(d[channels_key]) > 0]
        return ", ".join(listed) if listed else "none"

    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "default"):
        default_in, default_out = _default_indices(sd)
        index = default_in if kind == "input" else default_out
        if index < 0 or index >= len(devices):
            raise DeviceError(
                f"no default {kind} device: PortAudio reports {index} (no sound card, or no "
                f"sound server behind ALSA's 'default'); {kind} devices: {available()}. "
                "Pick one with its index or name (`audio-engine devices` lists them)"
            )
        return endpoint(index)
    if isinstance(spec, bool):
        raise ConfigError(f"device={spec!r} is not an index or a name")
    if isinstance(spec, int | np.integer) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        if not 0 <= index < len(devices):
            raise DeviceError(f"device index {index} does not exist; {kind} devices: {available()}")
        if int(devices[index][channels_key]) < 1:
            raise DeviceError(
                f"device {index} '{devices[index]['name']}' has no {kind} channels; "
                f"{kind} devices: {available()}"
            )
        return endpoint(index)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"device={spec!r} is not an index or a name")
    wanted = spec.strip().lower()
    candidates = [i for i, d in enumerate(devices) if int(d[channels_key]) > 0]
    exact = [i for i in candidates if str(devices[i]["name"]).lower() == wanted]
    if exact:
        return endpoint(exact[0])
    partial = [i for i in candidates if wanted in str(devices[i]["name"]).lower()]
    if len(partial) == 1:
        return endpoint(partial[0])
    if len(partial) > 1:
        names = ", ".join(f"{i} '{devices[i]['name']}'" for i in partial)
        raise DeviceError(
            f"{kind} device {spec!r} is ambiguous: it matches {names}; give an index or a "
            "longer part of the name"
        )
    pulse = _pulse_names(kind)
    if spec.strip() in pulse:
        carrier = [i for i in candidates if str(devices[i]["name"]).lower() == "pulse"]
        if not carrier:
            raise DeviceError(
                f"{spec!r} is a sound-server {'source' if kind == 'input' else 'sink'} but "
                "PortAudio has no ALSA 'pulse' device to reach it (apt-get install "
                "libasound2-plugins)"
            )
        return endpoint(carrier[0], spec.strip())
    server_hint = (
        f"; sound-server {'sources' if kind == 'input' else 'sinks'}: {', '.join(pulse)}"
        if pulse
        else ""
    )
    raise DeviceError(
        f"no {kind} device matches {spec!r}; {kind} devices: {available()}{server_hint}"
    )


def check_settings(endpoint: Endpoint, sample_rate: int, channels: int) -> None:
    """Raise a DeviceError unless ``endpoint`` takes ``sample_rate`` Hz with ``channels`` float32 channels."""
    sd = import_sounddevice()
    if channels > endpoint.max_channels:
        raise DeviceError(
            f"{endpoint.kind} device {endpoint.describe()} has {endpoint.max_channels} "
            f"{endpoint.kind} channel(s); {channels} requested"
        )
    check = sd.check_input_settings if endpoint.kind == "input" else sd.check_output_settings
    try:
        with pulse_routing(endpoint):
            check(device=endpoint.index, channels=channels, dtype="float32", samplerate=sample_rate)
    except Exception as exc:  # noqa: BLE001 - PortAudioError / ValueError: the device refuses
        rates = _supported_rates(sd, endpoint.index, endpoint.kind)
        raise DeviceError(
            f"{endpoint.kind} device {endpoint.describe()} does not support "
            f"sample_rate={sample_rate} Hz with {channels} channel(s) ({exc}); rates it takes: "
            f"{rates or 'none of ' + str(list(PROBE_SAMPLE_RATES))} Hz"
        ) from None


@contextlib.contextmanager
def pulse_routing(*endpoints: Endpoint | None):
    """Point the ALSA pulse plugin at the endpoints' server sink/source while a stream opens."""
    saved = {}
    try:
        for ep in endpoints:
            if ep is not None and ep.pulse_name:
                var = _PULSE_ENV[ep.kind]
                saved.setdefault(var, os.environ.get(var))
                os.environ[var] = ep.pulse_name
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


# The names other modules and tests used before these became public; the lookup in
# resolve_device goes through _pulse_names so a test can replace it.
_pulse_names = sound_server_names
_pulse_routing = pulse_routing


#: Largest |sample| accepted from a capture device: 64 is 36 dB above full scale, more than any
#: float source mixing a few streams can reach; beyond it a "sample" is garbage (the ALSA pulse
#: plugin has handed new capture streams values above 1e30).
MAX_INPUT_MAGNITUDE = 64.0


@njit(cache=True)
def _meter_and_sanitize(
    peak: np.ndarray, bad: np.ndarray, block: np.ndarray, max_magnitude: float
) -> None:
    """Track max |sample| in ``peak[0]``; zero garbage samples in place and count them.

    ``bad[0]`` counts NaN/Inf, ``bad[1]`` finite samples above ``max_magnitude``. Real-time
    safe. Why: the ALSA pulse plugin has been measured handing a new capture stream random
    bits — NaN, 1e30, but also plausible values — in its first tens of ms, before any real
    sample (tests/test_soundserver.py); one NaN would reach every stage's filter state, one
    loud garbage sample makes a limiter or level control clamp down for seconds (measured on
    the receive path). Garbage that looks like audio is kept from the pipeline by the capture
    warm-up of :class:`DeviceStream` instead.
    """
    m = peak[0]
    nonfinite = 0
    huge = 0
    for i in range(block.shape[0]):
        for c in range(block.shape[1]):
            v = block[i, c]
            if not np.isfinite(v):
                block[i, c] = 0.0
                nonfinite += 1
                continue
            v = abs(v)
            if v > max_magnitude:
                block[i, c] = 0.0
                huge += 1
                continue
            if v > m:
                m = v
    peak[0] = m
    bad[0] += nonfinite
    bad[1] += huge


class DeviceStream:
    """A pipeline running on sound cards: input, output or duplex.

    Parameters
    ----------
    pipeline : Pipeline
        Built for the stream's sample rate and block size; its meter counts PortAudio status
        flags and deadline misses.
    mode : {'input', 'output', 'duplex'}
        Which directions the stream has.
    input_device, output_device : int, str or None
        See :func:`resolve_device`; ignored for the direction ``mode`` lacks.
    latency : float or {'low', 'high'}
        PortAudio's suggested latency per direction, seconds; default
        :data:`DEFAULT_LATENCY_S` (why: see its comment).
    tap : callable, optional
        ``tap(out_block)`` after each processed block of an input-only stream (real-time safe
        consumers only, e.g. :meth:`RingBuffer.write`).
    bridge : bool, optional
        Run a duplex stream as two PortAudio streams joined by a ring buffer. Default: only
        when input and output are different PortAudio devices.
    input_channels : int, optional
        Channels to capture, >= ``pipeline.channels`` (default equal): for a device that only
        opens in stereo; the pipeline takes the first ``pipeline.channels``.
    capture_warmup_s : float, optional
        Seconds of captured audio discarded after each start, 0..1, in whole blocks: the
        pipeline does not see them and the output is silent meanwhile. Default: on PortAudio's
        ALSA host API the device's input latency plus two blocks (why:
        :func:`_meter_and_sanitize`), elsewhere 0.

    Notes
    -----
    Building checks every setting with PortAudio and opens the stream(s); :meth:`start` starts
    them. The callbacks copy, run the pipeline and count: no allocation beyond the views
    sounddevice itself makes, no logging, no lock.

    Examples
    --------
    >>> with DeviceStream(pipeline, "duplex", "USB Headset", "CABLE Input") as stream:
    ...     time.sleep(10)                                            # doctest: +SKIP
    >>> print(stream.report().to_text())                             # doctest: +SKIP
    """

    def __init__(
        self,
        pipeline,
        mode: Mode = "duplex",
        input_device: int | str | None = None,
        output_device: int | str | None = None,
        latency: float | str = DEFAULT_LATENCY_S,
        tap=None,
        bridge: bool | None = None,
        input_channels: int | None = None,
        capture_warmup_s: float | None = None,
    ):
        from audio_engine.engine import PipelineCallback

        if mode not in ("input", "output", "duplex"):
            raise ConfigError(f"mode={mode!r} is not 'input', 'output' or 'duplex'")
        if isinstance(latency, str):
            if latency not in ("low", "high"):
                raise ConfigError(f"latency={latency!r} is not 'low', 'high' or seconds in 0..1")
        elif not (isinstance(latency, int | float) and 0.0 <= latency <= 1.0):
            raise ConfigError(f"latency={latency!r} is not 'low', 'high' or seconds in 0..1")
        self.sd = import_sounddevice()
        self.pipeline = pipeline
        self.mode = mode
        self.latency = latency
        self.sample_rate = pipeline.sample_rate
        self.block_size = pipeline.block_size
        self.input = resolve_device(input_device, "input") if mode != "output" else None
        self.output = resolve_device(output_device, "output") if mode != "input" else None
        if input_channels is None:
            input_channels = pipeline.channels
        if (
            isinstance(input_channels, bool)
            or not isinstance(input_channels, int | np.integer)
            or not pipeline.channels <= input_channels <= 64
        ):
            raise ConfigError(
                f"input_channels={input_channels!r} is not an integer in "
                f"{pipeline.channels}..64 (the pipeline takes {pipeline.channels})"
            )
        self.input_channels = int(input_channels)
        if self.input is not None:
            check_settings(self.input, self.sample_rate, self.input_channels)
        if self.output is not None:
            check_settings(self.output, self.sample_rate, pipeline.output_channels)
        # Two different PortAudio devices have two clocks: bridge them with a ring buffer
        # rather than one PortAudio stream across both (which xruns as the clocks drift).
        if bridge is None:
            bridge = (
                self.input is not None
                and self.output is not None
                and (self.input.index != self.output.index)
            )
        self.bridged = bool(bridge) and mode == "duplex"
        self.ring = (
            # Room for the kept backlog at the largest allowed latency (1 s per direction).
            RingBuffer(
                BRIDGE_BLOCKS * self.block_size + 2 * self.sample_rate, pipeline.output_channels
            )
            if self.bridged
            else None
        )
        # Monitoring state written by the callbacks, read by status lines: preallocated.
        self.input_peak = np.zeros(1, np.float64)
        self.status_flags = np.zeros(1, np.int64)
        # [non-finite, beyond MAX_INPUT_MAGNITUDE, warm-up frames left, warm-up frames discarded]
        self.bad_input = np.zeros(4, np.int64)
        _meter_and_sanitize(
            self.input_peak, self.bad_input, np.zeros((1, 1), np.float32), MAX_INPUT_MAGNITUDE
        )
        self._callback = PipelineCallback(pipeline, tap=self.ring.write if self.bridged else tap)
        self._streams = self._open()
        # The bridge keeps what the output device buffers plus two blocks, so a host that calls
        # back in bursts (several blocks at once, as the ALSA pulse plugin does with large
        # buffers) is not mistaken for a backlog; anything older is skipped and counted.
        self.bridge_keep_frames = 2 * self.block_size + int(
            round(self.device_latency_s["output"] * self.sample_rate)
        )
        # Capture warm-up: one input buffer plus two blocks, the span in which garbage was seen
        # (up to 2665 frames with a 1920-frame input buffer at 48 kHz).
        if capture_warmup_s is None:
            # Where the garbage was measured: PortAudio's ALSA host API (the pulse plugin).
            # Elsewhere nothing is discarded until a measurement says otherwise.
            on_alsa = self.input is not None and self.input.hostapi == "ALSA"
            capture_warmup_s = (
                2 * self.block_size / self.sample_rate + self.device_latency_s["input"]
                if on_alsa
                else 0.0
            )
        if not isinstance(capture_warmup_s, int | float) or not 0.0 <= capture_warmup_s <= 1.0:
            self.close()
            raise ConfigError(f"capture_warmup_s={capture_warmup_s!r} is not a number in 0..1 s")
        self.warmup_frames = (
            0 if self.input is None else int(round(capture_warmup_s * self.sample_rate))
        )

    # -- callbacks (real-time) -----------------------------------------------------------------
    def _main_callback(self, indata, outdata, frames, time_info, status) -> None:
        if status:
            self.status_flags[0] += 1
        warmup = self.bad_input
        if warmup[2] > 0:
            # Capture warm-up: the pipeline sees neither these frames nor zeros in their place
            # (a suppressor would learn a noise floor of digital silence); the output is silent.
            warmup[2] -= frames
            warmup[3] += frames
            if outdata is not None:
                outdata.fill(0.0)
            return
        if indata is not None:
            _meter_and_sanitize(self.input_peak, self.bad_input, indata, MAX_INPUT_MAGNITUDE)
        self._callback(indata, outdata, frames, time_info, status)

    def _input_callback(self, indata, frames, time_info, status) -> None:
        self._main_callback(indata, None, frames, time_info, status)

    def _output_callback(self, outdata, frames, time_info, status) -> None:
        self._main_callback(None, outdata, frames, time_info, status)

    def _bridge_output_callback(self, outdata, frames, time_info, status) -> None:
        if status:
            self.status_flags[0] += 1
            self.pipeline.meter.count_status(False, bool(status.output_underflow), False)
        # Bounded hand-over delay: at most bridge_keep_frames - frames of backlog survive.
        self.ring.skip_to(self.bridge_keep_frames)
        self.ring.read(outdata)

    # -- life cycle ------------------------------------------------------------------------------
    def _open(self) -> list:
        sd = self.sd
        common = dict(
            samplerate=self.sample_rate,
            blocksize=self.block_size,
            dtype="float32",
            latency=self.latency,
        )
        p = self.pipeline
        try:
            if self.mode == "duplex" and not self.bridged:
                with pulse_routing(self.input, self.output):
                    return [
                        sd.Stream(
                            device=(self.input.index, self.output.index),
                            channels=(self.input_channels, p.output_channels),
                            callback=self._main_callback,
                            **common,
                        )
                    ]
            streams = []  # kept outside the try's result, to close them if a later one fails
            self._partial = streams
            if self.input is not None:
                with pulse_routing(self.input):
                    streams.append(
                        sd.InputStream(
                            device=self.input.index,
                            channels=self.input_channels,
                            callback=self._input_callback,
                            **common,
                        )
                    )
            if self.output is not None:
                with pulse_routing(self.output):
                    streams.append(
                        sd.OutputStream(
                            device=self.output.index,
                            channels=p.output_channels,
                            callback=self._bridge_output_callback
                            if self.bridged
                            else self._output_callback,
                            **common,
                        )
                    )
            return streams
        except Exception as exc:  # noqa: BLE001 - PortAudioError: the device refused to open
            for opened in getattr(self, "_partial", []):
                with contextlib.suppress(Exception):
                    opened.close()
            raise DeviceError(
                f"cannot open the {self.mode} stream on "
                f"{self.describe()} at {self.sample_rate} Hz, block {self.block_size}: {exc}"
            ) from None

    def describe(self) -> str:
        """Which devices the stream uses, for messages and reports."""
        parts = []
        if self.input is not None:
            parts.append(f"input {self.input.describe()}")
        if self.output is not None:
            parts.append(f"output {self.output.describe()}")
        return ", ".join(parts) + (" (bridged by a ring buffer)" if self.bridged else "")

    def start(self) -> None:
        """Start the stream(s): output first, so a bridge's ring is read from the start.

        The blocks covering the first :attr:`warmup_frames` captured frames are not processed
        and give silence (why: :func:`_meter_and_sanitize`).
        """
        self.bad_input[2] = self.warmup_frames
        for stream in reversed(self._streams):
            stream.start()

    def stop(self) -> None:
        """Stop the stream(s) after the blocks in flight (idempotent)."""
        for stream in self._streams:
            if not stream.closed:
                stream.stop()

    def close(self) -> None:
        """Stop and release the device(s) (idempotent)."""
        for stream in self._streams:
            if not stream.closed:
                stream.close()

    def __enter__(self) -> DeviceStream:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.close()

    @property
    def active(self) -> bool:
        """Whether every stream is running."""
        return all(s.active for s in self._streams)

    @property
    def device_latency_s(self) -> dict:
        """PortAudio's reported latency in seconds, ``{"input": ..., "output": ...}``."""
        latency = {"input": 0.0, "output": 0.0}
        for s in self._streams:
            value = s.latency
            if isinstance(value, tuple):
                latency["input"], latency["output"] = float(value[0]), float(value[1])
            elif isinstance(s, self.sd.InputStream):
                latency["input"] = float(value)
            else:
                latency["output"] = float(value)
        return latency

    def read_input_peak(self) -> float:
        """Largest |input sample| since the last call (for a status line), then reset."""
        value = float(self.input_peak[0])
        self.input_peak[0] = 0.0
        return value

    def report(self, telemetry: dict | None = None):
        """The pipeline's latency report with PortAudio's latency and the device figures."""
        extra = {
            "devices": self.describe(),
            "callback faults": self._callback.faults,
            "non-finite input samples zeroed": int(self.bad_input[0]),
            "impossible input samples zeroed": int(self.bad_input[1]),
            "input warm-up frames discarded": int(self.bad_input[3]),
        }
        if self.ring is not None:
            extra["bridge dropped frames"] = self.ring.dropped_frames
            extra["bridge zero-filled frames"] = self.ring.missing_frames
            extra["bridge skipped frames"] = self.ring.skipped_frames
            extra["bridge backlog limit ms"] = round(
                1e3 * (self.bridge_keep_frames - self.block_size) / self.sample_rate, 2
            )
        extra.update(telemetry or {})
        return self.pipeline.report(device_latency_s=self.device_latency_s, telemetry=extra)
