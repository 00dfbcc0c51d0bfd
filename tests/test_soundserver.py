"""Through a real sound server: the virtual microphone, device streams and `audio-engine headset`.

These tests need a running PulseAudio/PipeWire-pulse server (``.ci/soundserver.sh``); they skip
with the reason where none runs and fail in CI (``sound_server`` fixture). Every check looks at
the samples, not only at status flags: a server that corrupts audio silently (dropped or
repeated fragments with ``latency='low'``) fails the bit-exact and correlation checks.

The test process is always a separate client: it plays into a null sink that stands for the
headset and records from the virtual microphone with its own PortAudio duplex stream, so it
measures the round trip on one clock.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from audio_engine.dsp.base import Gain
from audio_engine.io import virtual_device as vd
from audio_engine.io.device import DEFAULT_LATENCY_S, DeviceStream
from audio_engine.pipeline import Pipeline
from tests.conftest import CLI
from tests.signals import office_noise_signal, speech, white

pytestmark = pytest.mark.soundserver

SAMPLE_RATE = 48000
BLOCK = 480  # 10 ms: the headset command's default
TAG = f"aetest{os.getpid()}"


def _load_null_sink(name: str) -> int:
    return int(
        vd.pactl(
            "load-module",
            "module-null-sink",
            f"sink_name={name}",
            f"rate={SAMPLE_RATE}",
            "channels=1",
            "channel_map=mono",
            "format=float32le",
            "norewinds=1",
        ).strip()
    )


@pytest.fixture(scope="module")
def sinks(sound_server):
    """Two plain null sinks (the 'headset' and a scratch loop) and the virtual mic, removed after."""
    headset, loop, mic = f"{TAG}_headset", f"{TAG}_loop", f"{TAG}Mic"
    earpiece, speaker = f"{TAG}_earpiece", f"{TAG}Spk"
    modules = [_load_null_sink(headset), _load_null_sink(loop), _load_null_sink(earpiece)]
    vd.create_virtual_mic(mic)
    yield {"headset": headset, "loop": loop, "mic": mic, "earpiece": earpiece, "speaker": speaker}
    vd.remove_virtual_mic(mic)
    vd.remove_virtual_speaker(speaker)
    for m in modules:
        vd.pactl("unload-module", str(m))


def client_duplex(
    play: np.ndarray, sink: str, source: str, latency=DEFAULT_LATENCY_S, tail_s: float = 1.0
):
    """Play ``play`` (1-D float32) into ``sink`` and record ``source`` on one PortAudio stream.

    Returns the recording (len(play) + tail) aligned to the playback's first sample, the status
    flag count, the stream's reported (input, output) latency in seconds, and the stream's own
    loop delay in ms by PortAudio's timestamps (median of DAC time - ADC time).
    """
    import sounddevice as sd

    n = len(play) + int(tail_s * SAMPLE_RATE)
    padded = np.zeros(n, np.float32)
    padded[: len(play)] = play
    recording = np.zeros(n, np.float32)
    position = [0]
    flags = [0]
    # PortAudio's own view of this stream's loop delay, DAC time - ADC time, per callback.
    loop_s = np.zeros(n // BLOCK + 16)

    def callback(indata, outdata, frames, time_info, status):
        p = position[0]
        m = max(0, min(frames, n - p))
        outdata[:m, 0] = padded[p : p + m]
        outdata[m:] = 0.0
        recording[p : p + m] = indata[:m, 0]
        k = p // BLOCK
        if k < len(loop_s):
            loop_s[k] = time_info.outputBufferDacTime - time_info.inputBufferAdcTime
        position[0] = p + frames
        if status:
            flags[0] += 1

    with pulse_env(PULSE_SINK=sink, PULSE_SOURCE=source):
        stream = sd.Stream(
            device="pulse",
            samplerate=SAMPLE_RATE,
            blocksize=BLOCK,
            channels=1,
            dtype="float32",
            latency=latency,
            callback=callback,
        )
    with stream:
        reported = stream.latency
        deadline = time.monotonic() + 2.0 * n / SAMPLE_RATE + 5.0
        while position[0] < n and time.monotonic() < deadline:
            time.sleep(0.02)
    assert position[0] >= n, "the client stream stopped being called back"
    return recording, flags[0], reported, 1e3 * float(np.median(loop_s[: n // BLOCK]))


def lag_of(reference: np.ndarray, recorded: np.ndarray, max_lag: int) -> int:
    """Lag (samples) of ``reference`` in ``recorded`` by FFT cross-correlation."""
    from scipy.signal import correlate

    # The ALSA pulse plugin can hand a capture stream garbage (NaN, |x| >> 1) in its first
    # tens of ms, before any real sample arrives; keep it from poisoning the FFT. The samples
    # after the lag are then checked as they are.
    window = np.nan_to_num(recorded[: len(reference) + max_lag], posinf=0.0, neginf=0.0)
    np.clip(window, -1.0, 1.0, out=window)
    c = correlate(window, reference, mode="valid", method="fft")
    return int(np.argmax(c[: max_lag + 1]))


@contextlib.contextmanager
def pulse_env(**variables: str):
    """Set PULSE_SINK / PULSE_SOURCE while a stream opens (the ALSA pulse plugin reads them then)."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_headset(arguments: list[str], ready, play):
    """Run `audio-engine headset ARGS --quiet` as a subprocess; once ``ready()`` is true, call
    ``play()``, then Ctrl-C the engine. Returns (play's result, exit status, stdout, stderr)."""
    engine = subprocess.Popen(
        [*CLI, "headset", *arguments, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30.0
        while not ready():
            assert engine.poll() is None, f"headset exited early: {engine.communicate()}"
            assert time.monotonic() < deadline, "headset never started its streams"
            time.sleep(0.1)
        result = play()
        engine.send_signal(signal.SIGINT)  # Ctrl-C: stop cleanly, print and write the report
        out, err = engine.communicate(timeout=30.0)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
    return result, engine.returncode, out, err


def test_virtual_mic_is_idempotent_and_removed_cleanly(sound_server):
    name = f"{TAG}Idem"
    before = vd.list_modules()
    first = vd.create_virtual_mic(name)
    second = vd.create_virtual_mic(name)
    assert first.complete and second.complete
    assert (second.sink_module, second.source_module) == (first.sink_module, first.source_module)
    assert len(vd.list_modules()) == len(before) + 2, "a second create loaded more modules"
    assert "float32le 1ch 48000Hz" in first.sample_spec
    assert name in vd.list_sources(), "softphones must see the remap source as a microphone"
    assert vd.remove_virtual_mic(name) == [first.source_module, first.sink_module]
    assert vd.remove_virtual_mic(name) == []
    assert [m.index for m in vd.list_modules()] == [m.index for m in before]
    assert not vd.virtual_mic_status(name).sink_present


def test_virtual_speaker_is_idempotent_and_removed_cleanly(sound_server):
    name = f"{TAG}Spk2"
    first = vd.create_virtual_speaker(name)
    assert vd.create_virtual_speaker(name).sink_module == first.sink_module
    assert first.record_from == f"{name}.monitor" and first.complete
    assert vd.remove_virtual_speaker(name) == [first.sink_module]
    assert vd.remove_virtual_speaker(name) == []


def tone_durations_ms(sink: str, source: str, trials: int = 3) -> list[float]:
    """Play 200 ms tones, each as a new stream, into ``sink`` while another stream already plays
    there; return each tone's duration as recorded from ``source`` (ms above half amplitude)."""
    import sounddevice as sd

    chunks = []

    def record(indata, frames, time_info, status):
        chunks.append(indata[:, 0].copy())  # test client, not engine code: may allocate

    with pulse_env(PULSE_SOURCE=source):
        recorder = sd.InputStream(
            device="pulse", samplerate=SAMPLE_RATE, channels=1, dtype="float32",
            blocksize=BLOCK, latency=DEFAULT_LATENCY_S, callback=record,
        )  # fmt: skip
    with pulse_env(PULSE_SINK=sink):
        background = sd.OutputStream(
            device="pulse", samplerate=SAMPLE_RATE, channels=1, dtype="float32",
            blocksize=BLOCK, latency=0.3, callback=lambda out, *_: out.fill(0.0),
        )  # fmt: skip
    t = np.arange(int(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)  # 200 ms tone + 200 ms of silence
    tone[: len(t)] = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    durations = []
    with recorder, background:
        time.sleep(0.5)
        for _ in range(trials):
            start = sum(len(c) for c in chunks)
            with pulse_env(PULSE_SINK=sink):
                sd.play(tone, SAMPLE_RATE, device="pulse", blocking=True)
            time.sleep(0.3)
            loud = np.nonzero(np.abs(np.concatenate(chunks)[start:]) > 0.25)[0]
            durations.append(1e3 * (loud[-1] - loud[0]) / SAMPLE_RATE if len(loud) else 0.0)
    return durations


def test_virtual_mic_keeps_the_start_of_every_stream(sinks):
    """norewinds=1: a stream that starts while another plays is not cut (issue 4: 10-15 ms).

    Measured on a plain null sink without it (printed, not asserted: it is the server's
    behaviour) 15-17 ms of each new 200 ms tone went missing, and sometimes all of it.
    """
    mic = tone_durations_ms(f"{sinks['mic']}_sink", sinks["mic"])
    plain_sink = f"{TAG}_rewinds"
    module = vd.pactl(
        "load-module", "module-null-sink", f"sink_name={plain_sink}", f"rate={SAMPLE_RATE}",
        "channels=1", "format=float32le",
    ).strip()  # fmt: skip
    try:
        plain = tone_durations_ms(plain_sink, f"{plain_sink}.monitor", trials=2)
    finally:
        vd.pactl("unload-module", module)
    mic = [round(float(d), 1) for d in mic]
    plain = [round(float(d), 1) for d in plain]
    print(f"\n200 ms tones through the virtual mic: {mic} ms; null sink with rewinds: {plain} ms")
    # A 1 kHz tone's first and last half-amplitude samples are 200 ms - 2/3 period apart.
    assert min(mic) >= 199.0, f"the start of a stream was lost: {mic} ms of 200"


def test_virtual_mic_name_clash_is_a_clear_error(sinks):
    with pytest.raises(vd.DeviceError, match=f"a sink named '{sinks['loop']}' already exists"):
        vd.create_virtual_mic(sinks["loop"])


def transport_trial(sinks: dict, latency, seconds: float = 2.0, bridge=None) -> dict:
    """One bit-exactness trial of a 0 dB DeviceStream between two null sinks (see below)."""
    x = white(int(seconds * SAMPLE_RATE), offset=7, rms=0.1)[:, 0]
    # Direct loop: what the client alone adds (its own output + input latency).
    direct, direct_flags, _, direct_loop_ms = client_duplex(
        x, sinks["loop"], f"{sinks['loop']}.monitor"
    )
    max_lag = SAMPLE_RATE // 2
    direct_lag = lag_of(x, direct, max_lag)
    pipeline = Pipeline([Gain(SAMPLE_RATE, BLOCK, 1, gain_db=0.0)], name="transport")
    stream = DeviceStream(
        pipeline,
        "duplex",
        f"{sinks['headset']}.monitor",
        f"{sinks['mic']}_sink",
        latency,
        bridge=bridge,
    )
    with stream:
        time.sleep(0.3)
        through, flags, _, through_loop_ms = client_duplex(x, sinks["headset"], sinks["mic"])
    report = stream.report()
    lag = lag_of(x, through, max_lag)
    bad = {}
    for name, rec, at in (("direct", direct, direct_lag), ("engine", through, lag)):
        bad[name] = int(np.count_nonzero(np.abs(rec[at : at + len(x)] - x) > 1e-6))
    return {
        "frames": len(x),
        "bad_direct": bad["direct"],
        "bad_engine": bad["engine"],
        "direct_ms": 1e3 * direct_lag / SAMPLE_RATE,
        "added_ms": 1e3 * (lag - direct_lag) / SAMPLE_RATE,
        "reported_ms": report.total_latency_ms
        + report.device_input_latency_ms
        + report.device_output_latency_ms,
        "flags": direct_flags
        + flags
        + report.input_overflows
        + report.output_underflows
        + report.telemetry.get("bridge skipped frames", 0) // BLOCK
        + report.telemetry.get("bridge dropped frames", 0) // BLOCK
        + report.telemetry.get("bridge zero-filled frames", 0) // BLOCK,
        "direct_loop_ms": direct_loop_ms,
        "through_loop_ms": through_loop_ms,
        "added_by_timestamps_ms": 1e3 * lag / SAMPLE_RATE - through_loop_ms,
        "report": report,
    }


def test_device_stream_transports_samples_bit_exact(sinks):
    """A 0 dB DeviceStream between two null sinks must deliver every sample unchanged.

    Float32 sinks at the stream's rate: no conversion, so any dropped, repeated or zeroed
    fragment (the silent corruption some servers produce at low latency) shows as an error.
    Also: the round trip the engine adds, measured on the client's clock against a direct
    loop, is bounded by the latency the engine reports.
    """
    t = transport_trial(sinks, DEFAULT_LATENCY_S, seconds=1.5)
    report = t["report"]
    print(
        f"\nlatency={DEFAULT_LATENCY_S}: direct loop {t['direct_ms']:.1f} ms, engine adds "
        f"{t['added_ms']:.1f} ms, engine reports {t['reported_ms']:.1f} ms; flags {t['flags']}"
    )
    assert t["bad_direct"] == 0, f"the client's own loop corrupted {t['bad_direct']} samples"
    assert t["bad_engine"] == 0, f"{t['bad_engine']} of {t['frames']} samples corrupted"
    # The report is an upper bound of the real delay (PortAudio counts whole buffers, a null
    # sink's monitor delivers as soon as the sink renders) and not a loose one: the engine adds
    # at least one block (it cannot output a block before it has received it). +5 ms: the
    # server moves audio in 10 ms fragments, the lag is measured to the sample.
    assert report.block_buffering_ms - 1.0 <= t["added_ms"] <= t["reported_ms"] + 5.0


def test_two_stream_bridge_never_corrupts_silently(sinks):
    """Capture and playback as two streams joined by the ring (--two-streams), at 0.03 s.

    Every sample arrives unchanged, or the damage is counted (an xrun flag, a bridge skip,
    drop or zero-fill): never silent. The delay stays within the report plus the bridge's
    backlog limit.
    """
    t = transport_trial(sinks, 0.03, seconds=1.5, bridge=True)
    telemetry = t["report"].telemetry
    print(
        f"\nbridged latency=0.03: engine adds {t['added_ms']:.1f} ms, reports "
        f"{t['reported_ms']:.1f} ms + backlog limit {telemetry['bridge backlog limit ms']} ms; "
        f"corrupted {t['bad_engine']}, counted events {t['flags']}"
    )
    assert t["bad_engine"] == 0 or t["flags"] > 0, (
        f"{t['bad_engine']} samples corrupted and nothing counted"
    )
    assert (
        t["report"].block_buffering_ms - 1.0
        <= t["added_ms"]
        <= t["reported_ms"] + telemetry["bridge backlog limit ms"] + 5.0
    )


class BackgroundNoise:
    """Office noise looped into a sink by its own PortAudio stream, like a headset mic that is
    never silent: the engine hears it from its first block on (as in service), and speech
    played by another client mixes with it in the sink."""

    def __init__(self, sink: str, rms: float, seconds: float = 10.0):
        import sounddevice as sd

        noise = office_noise_signal("hvac", int(seconds * SAMPLE_RATE), SAMPLE_RATE, offset=3)
        self.noise = (rms * noise / np.std(noise)).astype(np.float32)
        self.position = 0
        with pulse_env(PULSE_SINK=sink):
            self.stream = sd.OutputStream(
                device="pulse",
                samplerate=SAMPLE_RATE,
                blocksize=BLOCK,
                channels=1,
                dtype="float32",
                latency=DEFAULT_LATENCY_S,
                callback=self._callback,
            )

    def _callback(self, outdata, frames, time_info, status):
        n = len(self.noise)
        for i in range(frames):  # loop without allocating a wrapped copy
            outdata[i, 0] = self.noise[(self.position + i) % n]
        self.position = (self.position + frames) % n

    def __enter__(self):
        self.stream.start()
        return self

    def __exit__(self, *exc):
        self.stream.stop()
        self.stream.close()


def test_headset_end_to_end_through_the_virtual_mic(sinks, tmp_path):
    """The issue's test: noisy speech → headset sink → `audio-engine headset` → virtual mic.

    HVAC noise runs into the 'headset' sink from before the engine starts; the test client
    plays clean speech into the same sink (the sink mixes them, 5 dB SNR) and records the
    virtual mic. Speech must arrive (correlation with the clean speech, better than the noisy
    mix's), the noise must be reduced, Ctrl-C must end the run with its report, and the delay
    the client measures must be bounded by the engine's report.
    """
    speech_only = speech("en", SAMPLE_RATE)
    lead = np.zeros(SAMPLE_RATE, np.float32)  # 1 s of noise alone before the speech
    clean = np.concatenate([lead, speech_only])
    snr_db = 5.0
    speech_power = float(np.mean(np.square(speech_only, dtype=np.float64)))
    noise_rms = float(np.sqrt(speech_power / 10 ** (snr_db / 10)))

    # Direct loop first (1 s of white noise): the client's own delay, to subtract.
    probe = white(SAMPLE_RATE, offset=11, rms=0.1)[:, 0]
    direct, _, _, _ = client_duplex(probe, sinks["loop"], f"{sinks['loop']}.monitor", tail_s=0.5)
    max_lag = SAMPLE_RATE // 2
    direct_lag = lag_of(probe, direct, max_lag)

    report_path = tmp_path / "headset.json"

    def play():
        time.sleep(1.0)  # the engine has heard 1 s of noise before the client starts
        return client_duplex(clean, sinks["headset"], sinks["mic"])

    with BackgroundNoise(sinks["headset"], noise_rms):
        (recorded, flags, _, _), status, out, err = run_headset(
            [
                "--input",
                f"{sinks['headset']}.monitor",
                "--output",
                "virtual",
                "--mic-name",
                sinks["mic"],
                "--report",
                str(report_path),
            ],
            ready=lambda: vd.virtual_mic_status(sinks["mic"]).players >= 1,
            play=play,
        )
    assert status == 130, err
    assert "Traceback" not in err
    assert "Latency report — headset" in out
    report = json.loads(report_path.read_text())["pipelines"]["headset"]

    lag = lag_of(speech_only, recorded[len(lead) :], max_lag) + len(lead)
    aligned = recorded[lag - len(lead) : lag - len(lead) + len(clean)]
    body = slice(len(lead), len(clean))
    corr_out = float(np.corrcoef(aligned[body], clean[body])[0, 1])
    # Correlation of clean speech with clean + independent noise: sqrt(S / (S + N)).
    corr_in = float(np.sqrt(1.0 / (1.0 + 10 ** (-snr_db / 10))))
    quiet = slice(SAMPLE_RATE // 5, len(lead))  # noise alone, as it reached the virtual mic
    noise_in_db = 20 * np.log10(noise_rms)
    noise_out_db = 10 * np.log10(np.mean(np.square(aligned[quiet], dtype=np.float64)) + 1e-20)
    added_ms = 1e3 * (lag - len(lead) - direct_lag) / SAMPLE_RATE
    reported_ms = (
        report["total_latency_ms"]
        + report["device_input_latency_ms"]
        + report["device_output_latency_ms"]
    )
    print(
        f"\ncorrelation with clean speech: noisy mix {corr_in:.3f}, virtual mic {corr_out:.3f}; "
        f"noise alone in {noise_in_db:.1f} dBFS, out {noise_out_db:.1f} dBFS; engine adds "
        f"{added_ms:.1f} ms, reports {reported_ms:.1f} ms (algorithmic "
        f"{report['algorithmic_latency_ms']:.1f}); xruns "
        f"{report['input_overflows']}+{report['output_underflows']}, client flags {flags}"
    )
    # Speech arrives, and cleaner than it went in.
    assert corr_out >= 0.8
    assert corr_out > corr_in
    # Noise is reduced by at least 15 dB (the suppressor's floor is 25 dB; this noise loses
    # 29 dB offline).
    assert noise_out_db <= noise_in_db - 15.0
    # Measured delay within the reported bound; and at least the algorithmic latency + a block.
    assert (
        report["algorithmic_latency_ms"] + report["block_buffering_ms"] - 1.0
        <= added_ms
        <= reported_ms + 5.0
    )


def test_headset_receive_path_protects_the_ear_through_the_virtual_speaker(sinks, tmp_path):
    """--receive: softphone → virtual speaker → hearing protection → headset earpiece.

    Far-end speech must arrive, a full-scale line squeal must come out no louder than the
    protector's hard limit (the guarantee survives the real transport), and the run must report
    both directions separately.
    """
    from audio_engine.dsp.hearing import HearingProtector
    from tests.signals import sine

    limit = HearingProtector(SAMPLE_RATE, BLOCK, 1).limit_amplitude
    far_end = speech("en", SAMPLE_RATE)[: 3 * SAMPLE_RATE]
    squeal = sine(3000.0, SAMPLE_RATE, 0.5, amplitude=1.0)
    x = np.concatenate([far_end, squeal, far_end[:SAMPLE_RATE]]).astype(np.float32)
    report_path = tmp_path / "both.json"

    def play():
        time.sleep(0.3)
        return client_duplex(x, sinks["speaker"], f"{sinks['earpiece']}.monitor")

    (recorded, _, _, _), status, out, err = run_headset(
        [
            "--input",
            f"{sinks['headset']}.monitor",
            "--mic-name",
            sinks["mic"],
            "--receive",
            "--speaker-name",
            sinks["speaker"],
            "--receive-output",
            sinks["earpiece"],
            "--report",
            str(report_path),
        ],
        # The engine creates the virtual speaker; ready once it records its monitor.
        ready=lambda: vd.virtual_speaker_status(sinks["speaker"]).recorders >= 1,
        play=play,
    )
    assert status == 130, err
    pipelines = json.loads(report_path.read_text())["pipelines"]
    assert set(pipelines) == {"headset", "receive"}
    assert "Latency report — receive" in out

    lag = lag_of(far_end, recorded, SAMPLE_RATE // 2)
    aligned = recorded[lag : lag + len(x)]
    # Judged from 0.5 s on: the client may start playing while the engine's capture is still in
    # its warm-up (the first buffer and two blocks are discarded on ALSA). Two full CI runs gave
    # 0.86 and 0.88 over the whole signal while a lone run gives 0.976 with every 0.25 s window
    # above 0.98, so the start is the likely loss; what follows it must arrive intact.
    settled = SAMPLE_RATE // 2
    speech_part = slice(settled, len(far_end))
    squeal_part = slice(len(far_end), len(far_end) + len(squeal))
    corr = float(np.corrcoef(aligned[speech_part], far_end[settled:])[0, 1])
    peak = float(np.max(np.abs(aligned)))
    print(
        f"\nreceive: correlation with far-end speech {corr:.3f}, squeal peak "
        f"{float(np.max(np.abs(aligned[squeal_part]))):.3f} (limit {limit:.3f}), "
        f"reported {pipelines['receive']['total_latency_ms']:.1f} ms + PortAudio; capture "
        f"warm-up frames discarded {pipelines['receive']['telemetry']['input warm-up frames discarded']}"
    )
    assert corr >= 0.9
    # The hard limit holds sample by sample at the ear (float32 transport: no rounding).
    assert peak <= limit * (1.0 + 1e-6)
    assert float(np.max(np.abs(aligned[squeal_part]))) >= 0.5 * limit, "the squeal vanished"


if __name__ == "__main__":
    # The measurement behind DEFAULT_LATENCY_S: repeated bit-exactness trials per latency
    # setting on the running server.
    # `python -m tests.test_soundserver [trials] [latency,latency...] [bridge]`: with `bridge`,
    # capture and playback run as two streams joined by the ring buffer (bridge skips and
    # drops count as flags: they are reported, not silent).
    import sys

    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    names = {"headset": f"{TAG}_headset", "loop": f"{TAG}_loop", "mic": f"{TAG}Mic"}
    loaded = [_load_null_sink(names["headset"]), _load_null_sink(names["loop"])]
    vd.create_virtual_mic(names["mic"])
    try:
        settings = (
            sys.argv[2].split(",") if len(sys.argv) > 2 else ["low", "0.04", "0.05", "0.06", "0.08"]
        )
        for latency in [x if x in ("low", "high") else float(x) for x in settings]:
            bridge = len(sys.argv) > 3 and sys.argv[3] == "bridge"
            rows = [transport_trial(names, latency, bridge=bridge) for _ in range(trials)]
            print(
                f"{'bridged ' if bridge else ''}latency={latency!s:>5}: corrupted trials "
                f"{sum(r['bad_engine'] > 0 for r in rows)}/{trials}, corrupted samples "
                f"{[r['bad_engine'] for r in rows]}, status flags {[r['flags'] for r in rows]}, "
                f"engine adds {[round(r['added_ms']) for r in rows]} ms (by timestamps "
                f"{[round(r['added_by_timestamps_ms']) for r in rows]}), client loops "
                f"{[(round(r['direct_ms']), round(r['direct_loop_ms'])) for r in rows]}, reports "
                f"{rows[0]['reported_ms']:.0f} ms",
                flush=True,
            )
    finally:
        vd.remove_virtual_mic(names["mic"])
        for m in loaded:
            vd.pactl("unload-module", str(m))
