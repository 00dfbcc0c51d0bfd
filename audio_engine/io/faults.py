"""A PortAudio that fails on purpose: devices that vanish, streams that error, overruns, restarts.

:class:`FaultyPortAudio` is a stand-in for the ``sounddevice`` module, the one backend interface
:class:`~audio_engine.io.device.DeviceStream` talks to (it imports ``sounddevice`` lazily, so a
module placed in ``sys.modules`` replaces PortAudio for the whole engine). Its streams do not
run on their own: the test drives them block by block with :meth:`FaultyPortAudio.run_blocks`,
exactly as PortAudio calls a callback, and injects what real offices do to a sound card:

* :meth:`~FaultyPortAudio.unplug` — a USB headset or zone amplifier interface is pulled out:
  every stream on it stops being called and becomes inactive (``stream.active`` is False),
  stopping it raises ``PortAudioError`` as PortAudio's ``Pa_StopStream`` does on a vanished
  device, it disappears from ``query_devices`` and opening it fails, until :meth:`plug`;
* :meth:`~FaultyPortAudio.fail_streams` — a host error mid-stream (the stream aborts, the
  device stays);
* :meth:`~FaultyPortAudio.overrun` — the next blocks arrive with PortAudio's input-overflow /
  output-underflow status flags, as after a callback that ran late;
* :meth:`~FaultyPortAudio.restart_server` / :meth:`~FaultyPortAudio.server_up` — the sound
  server (PulseAudio/PipeWire) restarts: every stream dies, every device is gone for a while,
  and the devices come back under new indices.

:class:`FaultyStage` is a processor that, when told, holds the callback past its deadline (a
callback overrun as the latency meter sees it) or raises (a processor bug).

For tests and fault drills only: nothing here is used by the running engine.
"""

from __future__ import annotations

import contextlib
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from audio_engine.dsp.base import Processor


class FaultyPortAudioError(Exception):
    """Stands in for ``sounddevice.PortAudioError``."""


@dataclass
class FaultyFlags:
    """Stands in for ``sounddevice.CallbackFlags``: true when any flag is set."""

    input_overflow: bool = False
    output_underflow: bool = False
    input_underflow: bool = False
    output_overflow: bool = False

    def __bool__(self) -> bool:
        return (
            self.input_overflow
            or self.output_underflow
            or self.input_underflow
            or self.output_overflow
        )


@dataclass
class _Device:
    name: str
    inputs: int
    outputs: int
    present: bool = True


@dataclass
class _StreamState:
    kind: str  # "duplex", "input", "output"
    devices: tuple[str, ...]
    channels: tuple[int, int]  # (inputs, outputs)
    callback: Callable
    blocksize: int
    active: bool = False
    closed: bool = False
    aborted: str | None = None  # why PortAudio stopped calling it
    outputs: list = field(default_factory=list)


class FaultyPortAudio:
    """A ``sounddevice`` stand-in whose devices and streams fail on command.

    Parameters
    ----------
    devices : list of (name, input_channels, output_channels)
        The sound cards present at the start.
    sample_rates : tuple of int
        Rates every device accepts (others raise as PortAudio's ``Invalid sample rate``).
    default : (int, int)
        Default input and output device indices.

    Notes
    -----
    :attr:`module` is the module object; :meth:`installed` puts it in ``sys.modules`` for a
    ``with`` block. Counters a test can assert on: :attr:`opened` (streams opened),
    :attr:`open_failures` (opens refused because a device was missing).
    """

    def __init__(
        self,
        devices: list[tuple[str, int, int]],
        sample_rates: tuple[int, ...] = (8000, 16000, 24000, 32000, 44100, 48000),
        default: tuple[int, int] = (0, 0),
    ):
        self._devices = [_Device(n, i, o) for n, i, o in devices]
        self.sample_rates = tuple(sample_rates)
        self.server_running = True
        self.streams: list[_StreamState] = []
        self.opened = 0
        self.open_failures = 0
        self._pending_flags: list[FaultyFlags] = []
        self.module = self._build_module(default)

    # -- the sounddevice surface ---------------------------------------------------------------
    def _present(self) -> list[_Device]:
        if not self.server_running:
            return []
        return [d for d in self._devices if d.present]

    def _table(self) -> list[dict]:
        return [
            {
                "index": i,
                "name": d.name,
                "hostapi": 0,
                "max_input_channels": d.inputs,
                "max_output_channels": d.outputs,
                "default_samplerate": 48000.0,
                "default_low_input_latency": 0.01,
                "default_low_output_latency": 0.01,
                "default_high_input_latency": 0.04,
                "default_high_output_latency": 0.04,
            }
            for i, d in enumerate(self._present())
        ]

    def _name_at(self, index: int) -> str:
        present = self._present()
        if not 0 <= int(index) < len(present):
            self.open_failures += 1
            raise FaultyPortAudioError(f"Invalid device [PaErrorCode -9996]: index {index}")
        return present[int(index)].name

    def _build_module(self, default: tuple[int, int]) -> types.ModuleType:
        sd = types.ModuleType("sounddevice")
        sd.PortAudioError = FaultyPortAudioError
        sd.CallbackFlags = FaultyFlags
        sd.default = types.SimpleNamespace(device=list(default))
        sd.query_hostapis = lambda: [{"name": "FaultyAPI"}]
        owner = self

        def query_devices(index=None):
            table = owner._table()
            if index is None:
                return table
            if not 0 <= int(index) < len(table):
                raise FaultyPortAudioError(f"Error querying device {index}")
            return table[int(index)]

        sd.query_devices = query_devices

        def make_check(kind: str):
            def check(device=None, channels=None, dtype=None, samplerate=None):
                entry = query_devices(device)
                if entry[f"max_{kind}_channels"] < (channels or 1):
                    raise FaultyPortAudioError("Invalid number of channels [PaErrorCode -9998]")
                if samplerate not in owner.sample_rates:
                    raise FaultyPortAudioError("Invalid sample rate [PaErrorCode -9997]")

            return check

        sd.check_input_settings = make_check("input")
        sd.check_output_settings = make_check("output")

        class _Stream:
            kind = "duplex"

            def __init__(self, device, channels, callback, samplerate, blocksize, dtype, latency):
                indices = device if isinstance(device, tuple | list) else (device,)
                names = tuple(owner._name_at(i) for i in indices)
                if self.kind == "duplex":
                    ins, outs = channels
                elif self.kind == "input":
                    ins, outs = channels, 0
                else:
                    ins, outs = 0, channels
                self._state = _StreamState(self.kind, names, (ins, outs), callback, blocksize)
                owner.streams.append(self._state)
                owner.opened += 1

            @property
            def latency(self):
                return (0.02, 0.03) if self.kind == "duplex" else 0.02

            @property
            def active(self) -> bool:
                return self._state.active

            @property
            def closed(self) -> bool:
                return self._state.closed

            def start(self) -> None:
                if self._state.aborted is not None:
                    raise FaultyPortAudioError(f"cannot start: {self._state.aborted}")
                self._state.active = True

            def stop(self) -> None:
                was_aborted = self._state.aborted
                self._state.active = False
                if was_aborted is not None and "unplugged" in was_aborted:
                    raise FaultyPortAudioError(
                        "Unanticipated host error [PaErrorCode -9999]: device unavailable"
                    )

            def close(self) -> None:
                self._state.active = False
                self._state.closed = True

        sd.Stream = type("Stream", (_Stream,), {"kind": "duplex"})
        sd.InputStream = type("InputStream", (_Stream,), {"kind": "input"})
        sd.OutputStream = type("OutputStream", (_Stream,), {"kind": "output"})
        return sd

    @contextlib.contextmanager
    def installed(self) -> Iterator[FaultyPortAudio]:
        """Make ``import sounddevice`` return this fake inside the ``with`` block."""
        saved = sys.modules.get("sounddevice")
        sys.modules["sounddevice"] = self.module
        try:
            yield self
        finally:
            if saved is None:
                sys.modules.pop("sounddevice", None)
            else:
                sys.modules["sounddevice"] = saved

    # -- faults --------------------------------------------------------------------------------
    def _abort(self, why: str, device: str | None = None) -> None:
        for s in self.streams:
            if not s.closed and s.aborted is None and (device is None or device in s.devices):
                s.active = False
                s.aborted = why

    def unplug(self, name: str) -> None:
        """The device ``name`` disappears: its streams stop, it leaves the device list."""
        for d in self._devices:
            if d.name == name:
                d.present = False
        self._abort(f"device {name!r} unplugged", name)

    def plug(self, name: str) -> None:
        """The device ``name`` comes back (last in the list: a new index)."""
        for i, d in enumerate(self._devices):
            if d.name == name:
                d.present = True
                self._devices.append(self._devices.pop(i))
                return
        raise KeyError(name)

    def fail_streams(self, message: str = "Unanticipated host error [PaErrorCode -9999]") -> None:
        """Every running stream aborts with a host error; the devices stay."""
        self._abort(message)

    def overrun(self, blocks: int = 1, input_overflow=True, output_underflow=True) -> None:
        """The next ``blocks`` callbacks carry PortAudio's overflow / underflow flags."""
        self._pending_flags.extend(
            FaultyFlags(input_overflow=input_overflow, output_underflow=output_underflow)
            for _ in range(blocks)
        )

    def restart_server(self) -> None:
        """The sound server goes down: every stream dies, no device is listed."""
        self.server_running = False
        self._abort("sound server restarted (device unplugged from the server)")

    def server_up(self) -> None:
        """The sound server is back; its devices are listed again, in reverse order (new
        indices, as a restarted server enumerates them)."""
        self.server_running = True
        self._devices.reverse()

    # -- driving -------------------------------------------------------------------------------
    def run_blocks(
        self, blocks: int, source: Callable[[np.ndarray], None] | None = None
    ) -> np.ndarray:
        """Call every active stream's callback ``blocks`` times, as PortAudio would.

        ``source(indata)`` fills each input block (silence if None). Returns the output of the
        last active stream with outputs, float32 (frames, channels); blocks during which no
        stream ran are zeros (the device was silent).
        """
        outs = None
        for s in self.streams:
            if s.channels[1] > 0:
                outs = np.zeros((blocks * s.blocksize, s.channels[1]), np.float32)
        for b in range(blocks):
            status = self._pending_flags.pop(0) if self._pending_flags else FaultyFlags()
            for s in list(self.streams):
                if not s.active:
                    continue
                n = s.blocksize
                indata = np.zeros((n, s.channels[0]), np.float32) if s.channels[0] else None
                outdata = np.zeros((n, s.channels[1]), np.float32) if s.channels[1] else None
                if indata is not None and source is not None:
                    source(indata)
                t = time.monotonic()
                time_info = {"inputBufferAdcTime": t, "outputBufferDacTime": t, "currentTime": t}
                if s.kind == "duplex":
                    s.callback(indata, outdata, n, time_info, status)
                elif s.kind == "input":
                    s.callback(indata, n, time_info, status)
                else:
                    s.callback(outdata, n, time_info, status)
                if outdata is not None and outs is not None and outs.shape[1] == outdata.shape[1]:
                    outs[b * n : (b + 1) * n] = outdata
        return outs if outs is not None else np.zeros((0, 0), np.float32)


class FaultyStage(Processor):
    """A pass-through stage that, when told, overruns its deadline or raises (a processor bug).

    Parameters
    ----------
    sample_rate, block_size, channels : int
        As every processor.

    Notes
    -----
    Not real-time safe by design: after :meth:`stall` the next ``blocks`` calls sleep
    ``stall_s`` (the latency meter records deadline misses); after :meth:`fail` the next
    ``blocks`` calls raise ``RuntimeError`` (the callback must output silence and count it).
    Tests and fault drills only.
    """

    def __init__(self, sample_rate: int, block_size: int, channels: int = 1):
        super().__init__(sample_rate, block_size, channels)
        self.stall_s = 0.0
        self._stalls = 0
        self._failures = 0

    def stall(self, stall_s: float, blocks: int = 1) -> None:
        """Make the next ``blocks`` process calls take at least ``stall_s`` seconds each."""
        self.stall_s = float(stall_s)
        self._stalls = int(blocks)

    def fail(self, blocks: int = 1) -> None:
        """Make the next ``blocks`` process calls raise RuntimeError."""
        self._failures = int(blocks)

    def _process(self, block: np.ndarray, out: np.ndarray) -> None:
        if self._failures > 0:
            self._failures -= 1
            raise RuntimeError("injected processor fault")
        if self._stalls > 0:
            self._stalls -= 1
            time.sleep(self.stall_s)
        if out is not block:
            out[:] = block
