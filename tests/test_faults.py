"""Faults injected through the backend: devices that vanish, host errors, overruns, restarts.

PortAudio is replaced by :class:`audio_engine.io.faults.FaultyPortAudio` (a ``sounddevice``
stand-in whose streams the test drives block by block), so these run without a sound card. The
engine must count every fault, report it, keep masking from coming back loud (silent on loss,
fade-in on return), and either reopen the device when it returns or exit with a clear message,
as :class:`audio_engine.io.supervisor.DeviceSupervisor` is configured.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from audio_engine.dsp.base import Gain
from audio_engine.dsp.masking import MaskingGenerator
from audio_engine.errors import ConfigError, DeviceError
from audio_engine.io import device
from audio_engine.io.device import DeviceStream
from audio_engine.io.faults import FaultyPortAudio, FaultyStage
from audio_engine.io.supervisor import DeviceSupervisor
from audio_engine.pipeline import Pipeline
from audio_engine.pipelines import build_headset_pipeline
from tests.signals import fast_mean_square, white

SAMPLE_RATE = 16000
BLOCK_SIZE = 160  # 10 ms
OFFICE = [("USB Headset", 1, 2), ("Zone amp", 0, 4), ("HDMI Output", 0, 8)]


class FakeClock:
    """Monotonic seconds the test advances by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def office(monkeypatch):
    fake = FaultyPortAudio(OFFICE)
    monkeypatch.setattr(device, "_pulse_names", lambda kind: [])
    with fake.installed():
        yield fake


def noise_source(offset: int = 0):
    """A source filling each input block with the next part of seeded noise."""
    data = white(SAMPLE_RATE * 60, 1, offset=offset, rms=0.1)
    position = [0]

    def fill(block: np.ndarray) -> None:
        n = block.shape[0]
        block[:, :1] = data[position[0] : position[0] + n]
        position[0] += n

    return fill


def masking_pipeline(fade_in_s: float = 0.5) -> tuple[Pipeline, MaskingGenerator]:
    generator = MaskingGenerator(
        SAMPLE_RATE,
        BLOCK_SIZE,
        4,
        [500, 630, 800, 1000],
        [0.0, -1.7, -3.3, -5.0],
        level_dba=45.0,
        ceiling_dba=48.0,
        spl_offset_db=80.0,
        fade_in_s=fade_in_s,
        fade_out_s=0.5,
    )
    return Pipeline([generator], name="masking"), generator


def masking_hooks(generator: MaskingGenerator):
    """What the mask command does on a lost and a restored device (see docs/reliability.md)."""
    events = []

    def on_lost(reason: str) -> None:
        events.append(("lost", reason))
        generator.reset()  # silent: the zone can only come back through its fade-in

    def on_restored() -> None:
        events.append(("restored", ""))
        generator.start()

    return on_lost, on_restored, events


def test_headset_unplugged_then_back_is_counted_reported_and_reopened(office):
    pipeline = build_headset_pipeline(SAMPLE_RATE, BLOCK_SIZE, 1)
    clock = FakeClock()
    lost = []
    supervisor = DeviceSupervisor(
        lambda: DeviceStream(pipeline, "duplex", "USB Headset", "USB Headset"),
        policy="reopen",
        retry_s=1.0,
        on_lost=lost.append,
        clock=clock,
    )
    supervisor.start()
    source = noise_source()
    before = office.run_blocks(100, source)
    assert supervisor.poll() is True
    assert float(np.abs(before[-50 * BLOCK_SIZE :]).max()) > 1e-3  # audio flows

    office.unplug("USB Headset")
    assert supervisor.poll() is False
    assert supervisor.device_losses == 1
    assert lost and "became inactive" in lost[0]
    assert "no input device matches 'USB Headset'" in supervisor.last_error
    silent = office.run_blocks(10, source)  # nobody calls the callback while it is gone
    assert not np.any(silent)
    attempts = supervisor.reopen_attempts
    clock.now += 0.5
    assert supervisor.poll() is False
    assert supervisor.reopen_attempts == attempts  # waits retry_s between attempts
    clock.now += 0.6
    assert supervisor.poll() is False
    assert supervisor.reopen_attempts == attempts + 1

    office.plug("USB Headset")  # back, under a new index
    clock.now += 1.0
    assert supervisor.poll() is True
    assert supervisor.reopens == 1
    after = office.run_blocks(100, source)
    assert np.all(np.isfinite(after))
    assert float(np.abs(after[-50 * BLOCK_SIZE :]).max()) > 1e-3  # audio flows again
    report = supervisor.report()
    assert report.telemetry["device losses"] == 1
    assert report.telemetry["device reopens"] == 1
    assert report.telemetry["seconds without device"] == pytest.approx(2.1)
    assert report.blocks == 200  # one meter over both streams
    assert "device losses" in report.to_text()
    supervisor.stop()


def test_exit_policy_raises_a_clear_device_error(office):
    pipeline = Pipeline([Gain(SAMPLE_RATE, BLOCK_SIZE, 1)], name="headset")
    supervisor = DeviceSupervisor(
        lambda: DeviceStream(pipeline, "duplex", "USB Headset", "USB Headset"), policy="exit"
    )
    supervisor.start()
    office.run_blocks(5)
    office.unplug("USB Headset")
    with pytest.raises(
        DeviceError,
        match=r"the audio stream stopped \(stream on input 0 'USB Headset' \(FaultyAPI\), "
        r"output 0 'USB Headset' \(FaultyAPI\) became inactive\) .*policy 'exit'",
    ):
        supervisor.poll()
    assert supervisor.device_losses == 1
    assert supervisor.stream is None  # the dead stream was closed (its stop raised; swallowed)


def test_reopen_policy_gives_up_after_give_up_s(office):
    pipeline = Pipeline([Gain(SAMPLE_RATE, BLOCK_SIZE, 1)], name="headset")
    clock = FakeClock()
    supervisor = DeviceSupervisor(
        lambda: DeviceStream(pipeline, "duplex", "USB Headset", "USB Headset"),
        retry_s=1.0,
        give_up_s=5.0,
        clock=clock,
    )
    supervisor.start()
    office.unplug("USB Headset")
    for _ in range(5):
        assert supervisor.poll() is False
        clock.now += 1.0
    with pytest.raises(
        DeviceError, match=r"did not come back within 5 s \(5 reopen attempts; last error: no "
    ):
        supervisor.poll()


def test_host_error_mid_stream_reopens_at_once(office):
    pipeline = Pipeline([Gain(SAMPLE_RATE, BLOCK_SIZE, 1)], name="headset")
    supervisor = DeviceSupervisor(
        lambda: DeviceStream(pipeline, "duplex", "USB Headset", "USB Headset"),
        clock=FakeClock(),
    )
    supervisor.start()
    office.run_blocks(5)
    office.fail_streams()
    assert supervisor.poll() is True  # the device is still there: first attempt succeeds
    assert (supervisor.device_losses, supervisor.reopens) == (1, 1)
    assert office.opened == 2


def test_sound_server_restart_masking_silent_then_fades_in_under_its_ceiling(office):
    pipeline, generator = masking_pipeline(fade_in_s=0.5)
    on_lost, on_restored, events = masking_hooks(generator)
    clock = FakeClock()
    supervisor = DeviceSupervisor(
        lambda: DeviceStream(pipeline, "output", output_device="Zone amp"),
        on_lost=on_lost,
        on_restored=on_restored,
        clock=clock,
    )
    supervisor.start()
    steady = office.run_blocks(300)  # 3 s: faded in and steady
    office.restart_server()
    assert supervisor.poll() is False
    assert events[0][0] == "lost"
    assert not generator.running.any()
    clock.now += 1.0
    assert supervisor.poll() is False  # the server is still down
    office.server_up()  # the devices come back, reversed: "Zone amp" has a new index
    clock.now += 1.0
    assert supervisor.poll() is True
    assert [e[0] for e in events] == ["lost", "restored"]
    back = office.run_blocks(200)
    steady_ms = np.mean(np.square(steady[-SAMPLE_RATE:], dtype=np.float64), axis=0)
    first_10ms_ms = np.mean(np.square(back[:BLOCK_SIZE], dtype=np.float64), axis=0)
    # It comes back through the fade-in: the first 10 ms are over 20 dB below the steady level
    # (the raised-cosine fade is at 0.1 % power after 10 ms of 500), and it reaches it again.
    assert np.all(first_10ms_ms < steady_ms * 10 ** (-20 / 10))
    end_ms = np.mean(np.square(back[-SAMPLE_RATE // 2 :], dtype=np.float64), axis=0)
    assert np.all(np.abs(10 * np.log10(end_ms / steady_ms)) < 1.0)
    ceiling_ms = 10 ** ((generator.ceiling_dba - generator.spl_offset_db) / 10)
    for audio in (steady, back):
        assert np.all(fast_mean_square(audio, SAMPLE_RATE) <= ceiling_ms * (1 + 1e-4))
    assert supervisor.report().telemetry["device losses"] == 1


def test_overruns_are_counted_in_the_report(office):
    stage = FaultyStage(SAMPLE_RATE, BLOCK_SIZE, 1)
    pipeline = Pipeline([stage], name="headset")
    supervisor = DeviceSupervisor(
        lambda: DeviceStream(pipeline, "duplex", "USB Headset", "USB Headset")
    )
    supervisor.start()
    office.overrun(7)  # PortAudio flags: input overflow and output underflow on 7 blocks
    office.run_blocks(20, noise_source())
    stage.stall(0.03, blocks=3)  # the callback itself overruns its 10 ms deadline three times
    office.run_blocks(5, noise_source())
    report = supervisor.report()
    assert report.input_overflows == 7
    assert report.output_underflows == 7
    assert report.deadline_misses >= 3  # a loaded machine may add more, never fewer
    assert report.max_us >= 30000.0
    assert supervisor.stream.status_flags[0] == 7
    assert supervisor.poll() is True  # overruns do not stop the stream


def test_processor_exception_outputs_silence_and_is_counted(office):
    stage = FaultyStage(SAMPLE_RATE, BLOCK_SIZE, 1)
    pipeline = Pipeline([stage], name="headset")
    supervisor = DeviceSupervisor(
        lambda: DeviceStream(pipeline, "duplex", "USB Headset", "USB Headset")
    )
    supervisor.start()
    stage.fail(blocks=4)
    out = office.run_blocks(10, noise_source())
    assert not np.any(out[: 4 * BLOCK_SIZE])  # silence, not garbage, while the stage raises
    assert np.any(out[4 * BLOCK_SIZE :])  # and audio again after
    report = supervisor.report()
    assert report.telemetry["callback faults"] == 4
    # counts of a stream that died are kept in the report of the next one
    office.fail_streams()
    supervisor.poll()
    assert supervisor.report().telemetry["callback faults"] == 4


def test_supervisor_refuses_bad_settings():
    with pytest.raises(ConfigError, match=r"policy='retry' is not one of 'reopen', 'exit'"):
        DeviceSupervisor(lambda: None, policy="retry")
    with pytest.raises(ConfigError, match=r"retry_s=0 is not a number in 0\.05\.\.60 s"):
        DeviceSupervisor(lambda: None, retry_s=0)
    with pytest.raises(ConfigError, match=r"give_up_s=-1 is not a number in 0\.\.604800 s"):
        DeviceSupervisor(lambda: None, give_up_s=-1)


def test_missing_device_at_start_is_a_device_error(office):
    office.unplug("Zone amp")
    pipeline, _ = masking_pipeline()
    supervisor = DeviceSupervisor(
        lambda: DeviceStream(pipeline, "output", output_device="Zone amp")
    )
    with pytest.raises(DeviceError, match=r"no output device matches 'Zone amp'"):
        supervisor.start()


def test_flapping_device_that_vanishes_while_reopening_is_retried(office):
    """The device comes back and is gone again before its new stream starts (a loose USB
    connector): the failed start is not a crash, the dead stream is closed, the next attempt
    after retry_s succeeds."""
    pipeline = Pipeline([Gain(SAMPLE_RATE, BLOCK_SIZE, 1)], name="headset")
    clock = FakeClock()
    flaps = [1]

    def loose_connector() -> None:
        if flaps[0]:
            flaps[0] -= 1
            office.unplug("USB Headset")

    supervisor = DeviceSupervisor(
        lambda: DeviceStream(pipeline, "duplex", "USB Headset", "USB Headset"),
        retry_s=1.0,
        on_restored=loose_connector,
        clock=clock,
    )
    supervisor.start()
    office.fail_streams()
    assert supervisor.poll() is False  # reopened, then the start failed: device gone again
    assert "PortAudioError" in supervisor.last_error and "unplugged" in supervisor.last_error
    assert supervisor.reopens == 0
    assert sum(not s.closed for s in office.streams) == 0  # nothing left open
    office.plug("USB Headset")
    clock.now += 1.0
    assert supervisor.poll() is True
    assert (supervisor.device_losses, supervisor.reopen_attempts, supervisor.reopens) == (1, 2, 1)


# -- the live mask command on a failing amplifier ----------------------------------------------
def _live_site(tmp_path) -> str:
    """The example site on the fake 4-channel "Zone amp", no adaptive capture, short fades,
    playing at whatever day and hour the test runs."""
    import shutil

    from audio_engine.pipelines import EXAMPLE_SITE

    shutil.copy(EXAMPLE_SITE.parent / "masking_target_default.csv", tmp_path)
    text = EXAMPLE_SITE.read_text(encoding="utf-8")
    for old, new in (
        ('# output_device = "Masking amp"', 'output_device = "Zone amp"'),
        ("fade_in_s = 5.0", "fade_in_s = 0.5"),
        ("fade_out_s = 3.0", "fade_out_s = 0.5"),
        ('"thu", "fri"]', '"thu", "fri", "sat", "sun"]'),
        ('start = "08:30"', 'start = "00:00"'),
        ('end = "18:30"', 'end = "24:00"'),
        ("[adaptive]\nenabled = true", "[adaptive]\nenabled = false"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    # without adaptive the zones listen to no microphones
    text = re.sub(r"\n(microphones|mic_coupling_db) = [^\n]*", "", text)
    config = tmp_path / "site.toml"
    config.write_text(text, encoding="utf-8")
    return str(config)


def _drive(office, events, stop, blocks: list, fired: list, period_s: float = 0.05):
    """PortAudio's side, in a thread: 5 blocks of 10 ms every 50 ms, and the faults at their
    times (seconds after the start, in ``events``; when each really happened goes to
    ``fired``)."""
    import time

    start = time.monotonic()
    pending = sorted(events)
    while not stop.is_set():
        now = time.monotonic() - start
        while pending and pending[0][0] <= now:
            pending.pop(0)[1]()
            fired.append(now)
        blocks.append((now, office.run_blocks(5)))
        time.sleep(period_s)


def test_mask_command_silences_a_lost_amplifier_and_fades_in_when_it_is_back(
    office, tmp_path, capsys
):
    """`audio-engine mask` live: the amplifier vanishes for a second (a sound-server restart
    would look the same); the zones go silent, the device is reopened when it returns (new
    index), the zones come back through their fade-in and the report counts it all."""
    import json
    import threading

    from audio_engine.cli import main

    config = _live_site(tmp_path)
    stop, blocks, fired = threading.Event(), [], []
    driver = threading.Thread(
        target=_drive,
        args=(
            office,
            [(1.0, lambda: office.unplug("Zone amp")), (2.0, lambda: office.plug("Zone amp"))],
            stop,
            blocks,
            fired,
        ),
    )
    driver.start()
    try:
        status = main(
            ["mask", "--config", config, "--seconds", "5", "--report", str(tmp_path / "r.json")]
        )
    finally:
        stop.set()
        driver.join()
    printed = capsys.readouterr().out
    assert status == 0
    assert "device lost" in printed and "device back" in printed
    telemetry = json.loads((tmp_path / "r.json").read_text())["pipelines"]["masking"]["telemetry"]
    assert telemetry["device losses"] == 1 and telemetry["device reopens"] == 1
    # Lost from the poll after the unplug (<= 0.25 s late) until the retry after the plug
    # (<= 1 s retry + a poll): at least the real gap minus one poll, at most the whole run. No
    # tighter upper bound: on a loaded machine each of those waits can stretch (wall clock).
    gap_s = fired[1] - fired[0]
    assert gap_s - 0.3 <= telemetry["seconds without device"] <= 5.0
    assert office.opened == 2

    def audio(t0, t1):
        parts = [b for t, b in blocks if t0 <= t < t1 and b.size]
        return np.concatenate(parts) if parts else np.zeros((0, 4), np.float32)

    unplugged, plugged = fired
    playing = audio(0.7, unplugged)
    gone = audio(unplugged + 0.01, plugged)
    back = audio(plugged, 5.0)
    assert float(np.sqrt(np.mean(np.square(playing)))) > 1e-4  # it played before
    assert not np.any(gone)  # nobody calls a vanished device
    # The first 10 ms of sound after the return are the fade-in's start, more than 20 dB below
    # the level half a second later: the zones did not come back at full level.
    sound = back[np.any(back != 0.0, axis=1)]
    # The run goes on 3 s after the return; a loaded machine may reopen late (retry up to 1 s
    # plus a poll), so ask for the one second of sound the comparison below uses.
    assert sound.shape[0] >= 48000
    first = float(np.sqrt(np.mean(np.square(sound[:480]))))
    steady = float(np.sqrt(np.mean(np.square(sound[24000:48000]))))
    assert 20.0 * np.log10(first / steady) < -20.0


def test_mask_command_exits_with_the_device_named_under_the_exit_policy(office, tmp_path, capfd):
    import threading

    from audio_engine.cli import main

    config = _live_site(tmp_path)
    stop, blocks, fired = threading.Event(), [], []
    driver = threading.Thread(
        target=_drive,
        args=(office, [(0.5, lambda: office.unplug("Zone amp"))], stop, blocks, fired),
    )
    driver.start()
    try:
        status = main(["mask", "--config", config, "--seconds", "10", "--on-device-loss", "exit"])
    finally:
        stop.set()
        driver.join()
    assert status == 2
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("audio-engine mask: error: the audio stream stopped")
    assert "'Zone amp'" in err[0] and "policy 'exit'" in err[0]
