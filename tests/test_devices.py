"""Devices without a sound server: error messages, routing, callbacks and the ring buffer.

PortAudio is replaced by a small fake ``sounddevice`` module (put in ``sys.modules``), so these
tests run on any machine and pin what a user sees when there is no PortAudio, no device, an
ambiguous name or an unsupported rate. The fake streams hand their callbacks to the test, which
then drives them like PortAudio would.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
import threading
import time
import tracemalloc
import types

import numpy as np
import pytest

from audio_engine.cli import main
from audio_engine.dsp.base import Gain
from audio_engine.errors import ConfigError, DeviceError
from audio_engine.io import device
from audio_engine.io import virtual_device as vd
from audio_engine.io.device import DeviceStream, check_settings, resolve_device
from audio_engine.io.ringbuffer import RingBuffer
from audio_engine.pipeline import Pipeline
from tests.signals import white


class FakePortAudioError(Exception):
    pass


class FakeFlags:
    """Stands in for sounddevice.CallbackFlags."""

    def __init__(self, input_overflow=False, output_underflow=False):
        self.input_overflow = input_overflow
        self.output_underflow = output_underflow
        self.input_underflow = False
        self.output_overflow = False

    def __bool__(self):
        return self.input_overflow or self.output_underflow


def fake_sounddevice(devices, default=(0, 0), rates=(16000, 48000)):
    """A sounddevice stand-in with ``devices`` = [(name, inputs, outputs), ...]."""
    sd = types.ModuleType("sounddevice")
    sd.PortAudioError = FakePortAudioError
    sd.opened = []
    sd.env_at_open = []
    table = [
        {
            "index": i,
            "name": name,
            "hostapi": 0,
            "max_input_channels": inputs,
            "max_output_channels": outputs,
            "default_samplerate": 48000.0,
            "default_low_input_latency": 0.01,
            "default_low_output_latency": 0.01,
            "default_high_input_latency": 0.04,
            "default_high_output_latency": 0.04,
        }
        for i, (name, inputs, outputs) in enumerate(devices)
    ]

    def query_devices(index=None):
        return table if index is None else table[index]

    sd.query_devices = query_devices
    sd.query_hostapis = lambda: [{"name": "FakeAPI"}]
    sd.default = types.SimpleNamespace(device=list(default))

    def make_check(kind):
        def check(device=None, channels=None, dtype=None, samplerate=None):
            if table[device][f"max_{kind}_channels"] < (channels or 1):
                raise FakePortAudioError("Invalid number of channels")
            if samplerate not in rates:
                raise FakePortAudioError("Invalid sample rate [PaErrorCode -9997]")

        return check

    sd.check_input_settings = make_check("input")
    sd.check_output_settings = make_check("output")

    class FakeStream:
        def __init__(self, device, channels, callback, samplerate, blocksize, dtype, latency):
            self.device, self.channels, self.callback = device, channels, callback
            self.latency_setting = latency
            self.active = False
            self.closed = False
            sd.opened.append(self)
            sd.env_at_open.append((os.environ.get("PULSE_SOURCE"), os.environ.get("PULSE_SINK")))

        @property
        def latency(self):
            return 0.02

        def start(self):
            self.active = True

        def stop(self):
            self.active = False

        def close(self):
            self.closed = True

    class Stream(FakeStream):
        @property
        def latency(self):
            return (0.02, 0.03)

    sd.Stream = Stream
    sd.InputStream = type("InputStream", (FakeStream,), {})
    sd.OutputStream = type("OutputStream", (FakeStream,), {})
    return sd


HEADSET_ROOM = [("USB Headset", 1, 2), ("HDMI Output", 0, 8), ("pulse", 32, 32)]


@pytest.fixture
def sd(monkeypatch):
    fake = fake_sounddevice(HEADSET_ROOM)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    monkeypatch.setattr(device, "_pulse_names", lambda kind: [])
    monkeypatch.setattr(device, "sound_server_names", lambda kind: [])
    return fake


# -- no PortAudio, no device -----------------------------------------------------------------


class _NoPortAudio(importlib.abc.MetaPathFinder):
    """Makes `import sounddevice` fail the way it does when libportaudio2 is missing."""

    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_missing_portaudio_says_how_to_install_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(
        DeviceError, match=r"PortAudio library not found.*apt-get install libportaudio2"
    ):
        resolve_device("USB", "input")


def test_missing_sounddevice_package_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(
        DeviceError, match=r"sounddevice package is missing.*pip install sounddevice"
    ):
        device.list_devices()


def test_devices_command_without_portaudio_is_one_line_exit_2(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    assert main(["devices"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("audio-engine devices: error: PortAudio library not found")
    assert "Traceback" not in err and err.count("\n") == 1


def test_no_default_device_names_minus_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice([], default=(-1, -1)))
    monkeypatch.setattr(device, "_pulse_names", lambda kind: [])
    with pytest.raises(
        DeviceError, match=r"no default input device: PortAudio reports -1 .*input devices: none"
    ):
        resolve_device(None, "input")
    with pytest.raises(DeviceError, match=r"no default output device: PortAudio reports -1"):
        resolve_device("default", "output")


# -- choosing devices --------------------------------------------------------------------------


def test_device_by_name_substring_index_and_default(sd):
    assert resolve_device("usb", "input").index == 0
    assert resolve_device("hdmi", "output").index == 1
    assert resolve_device(2, "input").name == "pulse"
    assert resolve_device("2", "output").name == "pulse"
    assert resolve_device(None, "input").index == 0
    # An exact name beats a substring match elsewhere.
    assert resolve_device("PULSE", "output").index == 2


def test_unknown_device_lists_what_exists(sd):
    with pytest.raises(
        DeviceError,
        match=r"no input device matches 'Jabra'; input devices: 0 'USB Headset', 2 'pulse'",
    ):
        resolve_device("Jabra", "input")


def test_ambiguous_name_lists_the_candidates(sd):
    with pytest.raises(
        DeviceError,
        match=r"output device 'u' is ambiguous: it matches 0 'USB Headset', 1 'HDMI Output', 2 'pulse'",
    ):
        resolve_device("u", "output")


def test_index_out_of_range_and_wrong_direction(sd):
    with pytest.raises(DeviceError, match=r"device index 9 does not exist; output devices: 0 'USB"):
        resolve_device(9, "output")
    with pytest.raises(DeviceError, match=r"device 1 'HDMI Output' has no input channels"):
        resolve_device(1, "input")
    with pytest.raises(ConfigError, match=r"kind='both' is not 'input' or 'output'"):
        resolve_device(0, "both")
    with pytest.raises(ConfigError, match=r"device=True is not an index or a name"):
        resolve_device(True, "input")


def test_unsupported_rate_names_it_and_the_rates_that_work(sd):
    usb = resolve_device("USB", "input")
    with pytest.raises(
        DeviceError,
        match=r"input device 0 'USB Headset' \(FakeAPI\) does not support sample_rate=44100 Hz "
        r"with 1 channel\(s\) .*rates it takes: \[16000, 48000\] Hz",
    ):
        check_settings(usb, 44100, 1)
    with pytest.raises(DeviceError, match=r"has 1 input channel\(s\); 2 requested"):
        check_settings(usb, 48000, 2)
    check_settings(usb, 48000, 1)  # supported: no error


def test_stream_with_unsupported_rate_fails_before_opening(sd):
    pipeline = Pipeline([Gain(44100, 441, 1)])
    with pytest.raises(DeviceError, match=r"does not support sample_rate=44100 Hz"):
        DeviceStream(pipeline, "duplex", "USB", "USB")
    assert sd.opened == []


def test_a_device_that_refuses_to_open_leaves_nothing_open(sd):
    class Refusing(sd.OutputStream):
        def __init__(self, *args, **kwargs):
            raise FakePortAudioError("Device unavailable [PaErrorCode -9985]")

    sd.OutputStream = Refusing
    with pytest.raises(
        DeviceError,
        match=r"cannot open the duplex stream on input 0 'USB Headset' .* output 1 'HDMI Output'"
        r".* at 48000 Hz, block 480: Device unavailable",
    ):
        DeviceStream(Pipeline([Gain(48000, 480, 1)]), "duplex", "USB", "HDMI")
    assert [s.closed for s in sd.opened] == [True]  # the capture side it had opened


def test_bad_latency_and_mode_are_config_errors(sd):
    pipeline = Pipeline([Gain(48000, 480, 1)])
    with pytest.raises(ConfigError, match=r"input_channels=0 is not an integer in 1..64"):
        DeviceStream(pipeline, "duplex", "USB", "USB", input_channels=0)
    with pytest.raises(DeviceError, match=r"has 1 input channel\(s\); 2 requested"):
        DeviceStream(pipeline, "duplex", "USB", "USB", input_channels=2)
    with pytest.raises(
        ConfigError, match=r"latency='fast' is not 'low', 'high' or seconds in 0..1"
    ):
        DeviceStream(pipeline, "duplex", "USB", "USB", latency="fast")
    with pytest.raises(ConfigError, match=r"mode='both' is not 'input', 'output' or 'duplex'"):
        DeviceStream(pipeline, "both", "USB", "USB")


def test_sound_server_names_route_through_pulse_only_while_opening(sd, monkeypatch):
    monkeypatch.setattr(
        device,
        "_pulse_names",
        lambda kind: ["alsa_input.usb-Jabra.mono"] if kind == "input" else ["CleanMic_sink"],
    )
    monkeypatch.delenv("PULSE_SOURCE", raising=False)
    monkeypatch.setenv("PULSE_SINK", "somebody_else")
    ep = resolve_device("alsa_input.usb-Jabra.mono", "input")
    assert (ep.index, ep.pulse_name) == (2, "alsa_input.usb-Jabra.mono")
    pipeline = Pipeline([Gain(48000, 480, 1)])
    stream = DeviceStream(pipeline, "duplex", "alsa_input.usb-Jabra.mono", "CleanMic_sink")
    assert not stream.bridged and len(sd.opened) == 1
    assert sd.env_at_open == [("alsa_input.usb-Jabra.mono", "CleanMic_sink")]
    assert "PULSE_SOURCE" not in os.environ
    assert os.environ["PULSE_SINK"] == "somebody_else"
    assert "→ source 'alsa_input.usb-Jabra.mono'" in stream.describe()
    with pytest.raises(
        DeviceError, match=r"no output device matches 'Nope'.*sound-server sinks: CleanMic_sink"
    ):
        resolve_device("Nope", "output")


# -- callbacks ---------------------------------------------------------------------------------


def test_duplex_callback_processes_and_counts_status_flags(sd):
    pipeline = Pipeline([Gain(48000, 480, 1, gain_db=-6.0)], name="headset")
    stream = DeviceStream(pipeline, "duplex", "USB", "USB")
    (pa,) = sd.opened
    assert pa.channels == (1, 1)
    pa.close()
    # A device that only captures in stereo: open 2 channels, process the first.
    sd.opened.clear()
    stream = DeviceStream(
        pipeline, "duplex", "pulse", "pulse", input_channels=2, capture_warmup_s=0.0
    )
    (pa,) = sd.opened
    assert pa.channels == (2, 1)
    x = white(480, offset=1)
    indata = np.concatenate([x, -x], axis=1)
    outdata = np.empty((480, 1), np.float32)
    with stream:
        pa.callback(indata, outdata, 480, None, FakeFlags())
        pa.callback(indata, outdata, 480, None, FakeFlags(input_overflow=True))
        pa.callback(indata, outdata, 480, None, FakeFlags(output_underflow=True))
    np.testing.assert_allclose(outdata, x * 10 ** (-6 / 20), rtol=1e-6)
    report = stream.report()
    assert (report.blocks, report.input_overflows, report.output_underflows) == (3, 1, 1)
    assert (report.device_input_latency_ms, report.device_output_latency_ms) == (20.0, 30.0)
    assert int(stream.status_flags[0]) == 2
    assert stream.read_input_peak() == pytest.approx(float(np.abs(x).max()))
    assert stream.read_input_peak() == 0.0
    assert pa.closed


def test_garbage_input_is_zeroed_counted_and_the_callback_allocates_nothing(sd):
    pipeline = Pipeline([Gain(48000, 480, 1)], name="headset")
    stream = DeviceStream(pipeline, "duplex", "USB", "USB")
    (pa,) = sd.opened
    x = white(480, offset=5)
    x[[3, 100, 479], 0] = [np.nan, np.inf, -np.inf]
    x[[200, 201], 0] = [1e30, -65.0]  # garbage a capture stream has delivered; not audio
    x[300, 0] = 60.0  # loud but possible: kept
    outdata = np.empty((480, 1), np.float32)
    flags = FakeFlags()
    pa.callback(x.copy(), outdata, 480, None, flags)
    assert np.isfinite(outdata).all()
    assert outdata[3, 0] == 0.0 and outdata[4, 0] == x[4, 0]
    assert outdata[200, 0] == 0.0 and outdata[201, 0] == 0.0 and outdata[300, 0] == 60.0
    telemetry = stream.report().telemetry
    assert telemetry["non-finite input samples zeroed"] == 3
    assert telemetry["impossible input samples zeroed"] == 2
    indata = white(480, offset=6)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(300):
            pa.callback(indata, outdata, 480, None, flags)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 2048, f"the device callback allocated {grown} bytes in 300 blocks"


def test_input_only_stream_taps_into_a_ring_and_output_only_feeds_silence(sd):
    ring = RingBuffer(4800, 1)
    recorder = DeviceStream(
        Pipeline([Gain(48000, 480, 1, gain_db=-20.0)]), "input", "USB", tap=ring.write
    )
    (capture,) = sd.opened
    assert isinstance(capture, sd.InputStream) and recorder.output is None
    x = white(480, offset=8)
    capture.callback(x, 480, None, FakeFlags())
    got = np.empty((480, 1), np.float32)
    assert ring.read(got) == 480
    np.testing.assert_allclose(got, 0.1 * x, rtol=1e-5)
    assert recorder.device_latency_s == {"input": 0.02, "output": 0.0}

    generator = DeviceStream(Pipeline([Gain(48000, 480, 1)]), "output", output_device="HDMI")
    playback = sd.opened[-1]
    assert isinstance(playback, sd.OutputStream) and generator.input is None
    out = np.ones((480, 1), np.float32)
    playback.callback(out, 480, None, FakeFlags(output_underflow=True))
    assert not out.any()
    assert generator.report().output_underflows == 1


def test_capture_starts_with_a_warm_up_of_silence_after_every_start(sd):
    """The first input buffer + 2 blocks after a start are silence: a new ALSA-pulse capture
    stream has been measured delivering random bits there, some of them plausible audio."""
    pipeline = Pipeline([Gain(48000, 480, 1)], name="headset")
    # Discarded by default only on ALSA, where the garbage was measured.
    assert DeviceStream(pipeline, "duplex", "USB", "USB").warmup_frames == 0
    sd.query_hostapis = lambda: [{"name": "ALSA"}]
    sd.opened.clear()
    stream = DeviceStream(pipeline, "duplex", "USB", "USB")
    (pa,) = sd.opened
    assert stream.warmup_frames == 960 + 960  # 20 ms input latency + two 10 ms blocks
    garbage = np.full((480, 1), 0.5, np.float32)
    out = np.empty((480, 1), np.float32)
    for _ in range(2):  # a restart re-arms the warm-up
        stream.start()
        for _ in range(4):
            pa.callback(garbage.copy(), out, 480, None, FakeFlags())
            assert not out.any()
        pa.callback(garbage.copy(), out, 480, None, FakeFlags())
        assert (out == 0.5).all()
        stream.stop()
    assert stream.report().telemetry["input warm-up frames discarded"] == 2 * 1920
    with pytest.raises(ConfigError, match=r"capture_warmup_s=2.0 is not a number in 0..1 s"):
        DeviceStream(pipeline, "duplex", "USB", "USB", capture_warmup_s=2.0)
    assert sd.opened[-1].closed


def test_two_devices_are_bridged_by_the_ring_with_bounded_delay(sd):
    block = 480
    pipeline = Pipeline([Gain(48000, block, 1)], name="headset")
    stream = DeviceStream(pipeline, "duplex", "USB", "HDMI", capture_warmup_s=0.0)
    assert stream.bridged
    capture, playback = sd.opened
    assert stream.device_latency_s == {"input": 0.02, "output": 0.02}
    x = white(20 * block, offset=2)
    out = np.zeros_like(x)
    out_block = np.empty((block, 1), np.float32)
    with stream:
        # The output device starts first and finds nothing: zeros, not an underrun yet.
        playback.callback(out_block, block, None, FakeFlags())
        assert not out_block.any()
        # A stall of the output side: the input side runs ahead by 5 blocks...
        for k in range(5):
            capture.callback(x[k * block : (k + 1) * block], block, None, FakeFlags())
        # ...then both alternate; the reader skips the backlog beyond what the output device
        # buffers (20 ms here) plus two blocks, at once.
        for k in range(5, 20):
            capture.callback(x[k * block : (k + 1) * block], block, None, FakeFlags())
            playback.callback(out[k * block : (k + 1) * block], block, None, FakeFlags())
    assert stream.bridge_keep_frames == 2 * block + 960
    # From the first alternating block on, the output is the input three blocks late: the
    # kept backlog (4 blocks) minus the block being read.
    np.testing.assert_array_equal(out[5 * block :], x[2 * block : 17 * block])
    report = stream.report()
    assert report.telemetry["bridge zero-filled frames"] == 0
    assert report.telemetry["bridge skipped frames"] == 2 * block
    # Once audio has flowed, an empty ring is an underrun and counted: three blocks are left,
    # the fourth read finds nothing.
    for _ in range(4):
        playback.callback(out_block, block, None, FakeFlags())
    assert stream.ring.missing_frames == block
    assert report.telemetry["bridge dropped frames"] == 0


# -- ring buffer -------------------------------------------------------------------------------


@pytest.mark.parametrize("write_size, read_size", [(1, 7), (64, 65), (480, 160), (1000, 1023)])
def test_ring_buffer_delivers_every_frame_in_order_across_wraps(write_size, read_size):
    ring = RingBuffer(1024, 2)
    x = white(20_000, channels=2, offset=3)
    got = np.zeros_like(x)
    w = r = 0
    out = np.empty((read_size, 2), np.float32)
    while r < len(x):
        if w < len(x):
            w += ring.write(x[w : w + min(write_size, ring.writable_frames)])
        n = ring.read(out[: min(read_size, len(x) - r)])
        got[r : r + n] = out[:n]
        r += n
    np.testing.assert_array_equal(got, x)
    assert ring.dropped_frames == 0


def test_ring_buffer_drops_newest_when_full_and_zero_fills_when_empty():
    ring = RingBuffer(100, 1)
    ramp = np.arange(150, dtype=np.float32)[:, None]
    assert ring.write(ramp) == 100
    assert (ring.dropped_frames, ring.readable_frames, ring.writable_frames) == (50, 100, 0)
    out = np.full((130, 1), -1.0, np.float32)
    assert ring.read(out) == 100
    np.testing.assert_array_equal(out[:100, 0], np.arange(100))
    assert not out[100:].any()
    assert ring.missing_frames == 30
    ring.write(ramp[:60])
    assert ring.skip_to(10) == 50
    ring.read(out[:10])
    np.testing.assert_array_equal(out[:10, 0], np.arange(50, 60))
    assert ring.skipped_frames == 50


def test_ring_buffer_survives_nan_and_allocates_nothing_after_warm_up():
    ring = RingBuffer(4096, 1)
    x = white(480, offset=4)
    x[10] = np.nan
    out = np.empty((480, 1), np.float32)
    ring.write(x)
    ring.read(out)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(200):
            ring.write(x)
            ring.skip_to(960)
            ring.read(out)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 1024, f"ring buffer allocated {grown} bytes in 200 blocks"
    assert np.isnan(out[10, 0]) and np.isfinite(np.delete(out[:, 0], 10)).all()


def test_ring_buffer_one_writer_one_reader_thread_lose_nothing():
    total = 200_000
    ring = RingBuffer(1 << 12, 1)
    x = np.arange(total, dtype=np.float32)[:, None] % 65536  # exact in float32
    got = np.zeros_like(x)

    def writer():
        w = 0
        while w < total:
            n = min(333, ring.writable_frames, total - w)
            if n:
                w += ring.write(x[w : w + n])
            else:
                time.sleep(0)  # let the reader run rather than spin on a full ring

    thread = threading.Thread(target=writer)
    thread.start()
    r = 0
    out = np.empty((257, 1), np.float32)
    while r < total:
        n = min(ring.readable_frames, 257, total - r)
        if n:
            ring.read(out[:n])
            got[r : r + n] = out[:n]
            r += n
    thread.join(timeout=30)
    np.testing.assert_array_equal(got, x)
    assert (ring.dropped_frames, ring.missing_frames) == (0, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"capacity_frames": 0}, r"capacity_frames=0 is not an integer in 1..4194304"),
        ({"capacity_frames": 1.5}, r"capacity_frames=1.5 is not an integer in 1..4194304"),
        ({"capacity_frames": 16, "channels": 0}, r"channels=0 is not an integer in 1..64"),
    ],
)
def test_ring_buffer_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RingBuffer(**kwargs)


# -- virtual device without a server ----------------------------------------------------------


def test_virtual_mic_without_pactl_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(vd.shutil, "which", lambda name: None)
    with pytest.raises(DeviceError, match=r"pactl not found.*apt-get install pulseaudio-utils"):
        vd.create_virtual_mic()
    assert main(["virtual-mic", "status"]) == 2
    assert capsys.readouterr().err.startswith("audio-engine virtual-mic: error: pactl not found")


def test_virtual_mic_without_a_server_is_one_clear_line(monkeypatch, tmp_path, capsys):
    if vd.shutil.which("pactl") is None:
        pytest.skip("pactl not installed: the no-server message comes from pactl itself")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # a runtime folder with no server in it
    monkeypatch.delenv("PULSE_SERVER", raising=False)
    assert main(["virtual-mic", "create"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "audio-engine virtual-mic: error: no PulseAudio/PipeWire sound server answers"
    )
    assert "VB-Cable/BlackHole" in err and err.count("\n") == 1


@pytest.mark.parametrize("name", ["", "two words", "-dash", "x" * 64, "Clean.monitor", 7])
def test_virtual_device_names_are_checked_before_pactl_runs(monkeypatch, name):
    monkeypatch.setattr(vd, "pactl", lambda *a, **k: pytest.fail("pactl must not run"))
    with pytest.raises(ConfigError, match=r"is not a valid virtual device name: use 1-63"):
        vd.create_virtual_mic(name)


# -- commands ----------------------------------------------------------------------------------


def test_devices_command_lists_channels_rates_and_defaults(sd, capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "USB Headset" in out and "HDMI Output" in out and "FakeAPI" in out
    assert "16k, 48k" in out


def test_headset_rejects_bad_values_before_touching_devices(sd, capsys):
    assert main(["headset", "--input", "USB", "--output", "USB", "--attenuation-db", "70"]) == 2
    assert "--attenuation-db=70.0 is not in 0..60 dB" in capsys.readouterr().err
    assert main(["headset", "--input", "Jabra", "--output", "USB", "--seconds", "1"]) == 2
    captured = capsys.readouterr()
    assert "no input device matches 'Jabra'" in captured.err
    assert captured.out == ""  # nothing ran, so no empty latency report
    assert sd.opened == []


def test_headset_runs_on_a_device_reports_and_exits_2_when_the_device_is_lost(sd, capsys):
    import json

    # A normal timed run: both stages built, streams started and stopped, report printed.
    assert main(["headset", "--input", "USB", "--output", "USB", "--seconds", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "Latency report — headset" in out and "NoiseSuppressor" in out
    assert "PortAudio reported latency: input 20.00 ms, output 30.00 ms" in out
    assert all(s.closed for s in sd.opened)

    # The headset vanishes mid-run (PortAudio stops calling back: the stream goes inactive).
    def unplug_soon():
        time.sleep(0.3)
        sd.opened[-1].active = False

    sd.opened.clear()
    threading.Thread(target=unplug_soon, daemon=True).start()
    report_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ae-lost-{os.getpid()}.json")
    status = main(
        [
            "headset",
            *("--input", "USB", "--output", "USB", "--seconds", "5"),
            *("--on-device-loss", "exit", "--report", report_path),
        ]
    )
    captured = capsys.readouterr()
    assert status == 2
    assert "error: the audio stream stopped (stream on input 0 'USB Headset'" in captured.err
    assert "Latency report — headset" in captured.out  # the report still comes out
    with open(report_path) as f:
        telemetry = json.load(f)["pipelines"]["headset"]["telemetry"]
    os.remove(report_path)
    assert telemetry["device losses"] == 1


# -- headset: array input, receive path logging (on the fake PortAudio) -----------------------


def test_headset_array_needs_the_channels_its_config_maps(sd, capsys):
    from audio_engine.resources import calibration_file

    code = main(
        [
            "headset",
            "--input",
            "USB Headset",
            "--output",
            "HDMI Output",
            "--quiet",
            "--array",
            str(calibration_file("example_array.toml")),
            "--seconds",
            "0.2",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "array 'desk-4' maps mics[3] to input channel 4, but 0 'USB Headset' (FakeAPI) has 1 input channel"
        in err
    )


def test_headset_array_runs_the_beamformer_and_receive_logs_the_dose(sd, tmp_path, capsys):
    from audio_engine.resources import calibration_file

    code = main(
        [
            "headset",
            "--input",
            "pulse",
            "--output",
            "HDMI Output",
            "--quiet",
            "--array",
            str(calibration_file("example_array.toml")),
            "--seconds",
            "0.3",
            "--receive",
            "pulse",
            "--receive-output",
            "HDMI Output",
            "--log-dir",
            str(tmp_path),
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())["pipelines"]
    assert [s["name"] for s in report["array"]["stages"]][1:] == [
        "MvdrBeamformer",
        "NoiseSuppressor",
    ]
    assert report["array"]["stages"][0]["name"] == "ArrayInput"
    assert "receive" in report
    opened = [
        s for s in sd.opened if s.device == 2 or (isinstance(s.device, tuple) and 2 in s.device)
    ]
    assert opened, "the array's capture stream was not opened on the 'pulse' device"
    # The receive path's dose log: the final dose record is written when the run ends.
    logs = list(tmp_path.glob("*.jsonl"))
    assert logs and any('"dose"' in p.read_text() for p in logs)


def test_headset_refuses_an_unknown_headset_profile(sd, capsys):
    code = main(
        [
            "headset",
            "--input",
            "USB Headset",
            "--output",
            "HDMI Output",
            "--quiet",
            "--receive",
            "pulse",
            "--receive-output",
            "HDMI Output",
            "--headset-profile",
            "no-such-headset",
            "--seconds",
            "0.2",
        ]
    )
    assert code == 2
    assert "headset profile 'no-such-headset' is not known" in capsys.readouterr().err
