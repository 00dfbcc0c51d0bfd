"""``audio-engine mask``: office sound masking from a site config, live or simulated."""

from __future__ import annotations

import argparse

NAME = "mask"
ORDER = 30
HELP = "play office sound masking from a site config (or render it headless with --simulate)"
DESCRIPTION = """\
Office sound masking for every zone of a site config (calibration/example_site.toml is the
documented example): shaped, decorrelated noise per zone at its scheduled level, with the
install ramp-in, the adaptive rule from the ceiling microphones, ramps on every change and a hard
ceiling per zone that nothing can cross.

Live (default): plays on the site's output device, one device channel per zone (zone N on
channel N), with a live status (per-zone level, ceiling, adaptive state, per-frame latency).
Ctrl-C (or the end of --seconds) fades out, then prints the latency report. SIGHUP reloads the site config; an invalid
file is refused and the running config stays. A device that stops (unplugged, host error,
sound-server restart) silences the zones and is reopened every second until it is back, the
zones then fade in (--on-device-loss exit: stop with status 2 instead); the report counts it.

--simulate OUT.wav renders N seconds headless through the same pipeline on the simulated clock:
one WAV channel per zone, the digital signal each zone's amplifier would receive. --mics gives
a recording of the microphone array (one channel per microphone) to drive the adaptive rule;
the simulation adds the masking's own known contribution at the microphones, as the room would.

examples:
  audio-engine mask --config calibration/example_site.toml --simulate /tmp/mask.wav --seconds 30
  audio-engine mask --config calibration/example_site.toml --simulate /tmp/mask.wav \\
      --seconds 600 --start 2026-11-30T08:20
  audio-engine mask --config site.toml
"""


#: Seconds between checks that the live stream is still running: a lost amplifier is silenced
#: and retried within a quarter of a second, whatever the adaptive update interval is.
DEVICE_POLL_S = 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="SITE.toml", help="the site config")
    parser.add_argument(
        "--simulate",
        metavar="OUT.wav",
        help="render headless to this WAV (one channel per zone) instead of playing",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="seconds to render with --simulate (default 30), or to play live before fading "
        "out and reporting (default: until Ctrl-C); 1..86400",
    )
    parser.add_argument(
        "--start",
        metavar="YYYY-MM-DDTHH:MM",
        help="with --simulate: local time the simulation starts at (default: now); "
        "the schedule and the install ramp-in follow it",
    )
    parser.add_argument(
        "--mics",
        metavar="MICS.wav",
        help="with --simulate: microphone-array recording driving the adaptive rule",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="with --simulate: pace blocks to the wall clock as a sound card would",
    )
    parser.add_argument(
        "--calibration",
        metavar="CAL.toml",
        help="calibration file (default: <site>.calibration.toml next to the site config, if "
        "present; otherwise the site config's spl_offset_db and eq_db are used)",
    )
    parser.add_argument(
        "--adaptive",
        choices=("level", "spectral"),
        default="level",
        help="with [adaptive] enabled: 'level' follows the ambient dBA (default); 'spectral' "
        "keeps a neighbour's speech at SII <= 0.20 with the least masking, band by band "
        "(docs/spectral_masking.md)",
    )
    parser.add_argument(
        "--on-device-loss",
        choices=("reopen", "exit"),
        default="reopen",
        help="live: when the output (or microphone) device stops — unplugged, a host error, a "
        "sound-server restart — 'reopen' (default) silences the zones, retries every second "
        "until the device is back and fades the zones in again; 'exit' stops with status 2 and "
        "a message naming the device",
    )
    parser.add_argument("--report", metavar="PATH", help="also write the latency report as JSON")


def _calibrated(site, path):
    """The site with the calibration file's zone offsets and EQ applied, and a note saying so."""
    from pathlib import Path

    from audio_engine.calibration import apply_to_site, default_calibration_path, load_calibration

    chosen = Path(path) if path else default_calibration_path(site)
    if path is None and not chosen.exists():
        return site, "uncalibrated: zones use the site config's spl_offset_db and eq_db"
    return apply_to_site(site, load_calibration(chosen)), f"calibration: {chosen}"


def _status_table(supervisor, pipeline):
    from rich.table import Table

    meter = pipeline.meter
    table = Table(
        title=(
            f"masking: {supervisor.site.name} — block p50 {meter.recent_percentile_us(50):.0f} µs, "
            f"p99 {meter.recent_percentile_us(99):.0f} µs of {1e6 * pipeline.block_size / pipeline.sample_rate:.0f} µs"
        )
    )
    for column in ("zone", "level dBA", "now dBA", "ceiling dBA", "adaptive", "state"):
        table.add_column(column)
    for row in supervisor.status():
        a = row["adaptive"]
        adaptive = (
            "off"
            if a is None
            else (
                "waiting for mics"
                if a["ambient_dba"] is None
                else f"ambient {a['ambient_dba']:.1f}, goal {a['goal_dba']:.1f}, {a['state']}"
            )
        )
        state = "FAULT (faded out)" if row["fault"] else ("playing" if row["running"] else "off")
        if row["limiter_db"] > 0.05:
            state += f", ceiling -{row['limiter_db']:.1f} dB"
        table.add_row(
            row["name"],
            f"{row['level_dba']:.1f}",
            f"{row['now_dba']:.1f}" if row["now_dba"] > -200 else "silent",
            f"{row['ceiling_dba']:.1f}",
            adaptive,
            state,
        )
    return table


def _build(site, with_tap: bool, adaptive: str = "level"):
    if adaptive == "spectral":
        from audio_engine.dsp.spectral_masking import build_spectral_masking

        return build_spectral_masking(site, with_tap=with_tap)
    from audio_engine.dsp.adaptive import MicLevelTap
    from audio_engine.pipeline import Pipeline
    from audio_engine.pipelines import MASKING, build_masking_pipeline
    from audio_engine.schedule import MaskingSupervisor

    generator = build_masking_pipeline(site, site.sample_rate, site.block_size).stages[0]
    # Silent until the supervisor's first tick says which zones play, at which level.
    generator.reset()
    tap = None
    array = site.adaptive_array
    if with_tap and array is not None:
        tap = MicLevelTap(
            site.sample_rate, site.block_size, array.mics, array.sensitivity_offsets_db()
        )
        pipeline = Pipeline([tap, generator], name=MASKING)
    else:
        pipeline = Pipeline([generator], name=MASKING)
    return pipeline, generator, tap, MaskingSupervisor(site, generator, tap)


def _simulate(args, holder) -> int:
    import datetime as dt

    import numpy as np
    from rich.console import Console

    from audio_engine.dsp.adaptive import power_sum_db
    from audio_engine.engine import PipelineCallback
    from audio_engine.errors import ConfigError
    from audio_engine.io.files import FileSink, FileSource
    from audio_engine.io.sim import SimulatedClock
    from audio_engine.latency import write_reports_json

    site, note = _calibrated(holder.config, args.calibration)
    if args.seconds is None:
        args.seconds = 30.0
    try:
        start = dt.datetime.fromisoformat(args.start) if args.start else dt.datetime.now()
    except ValueError:
        raise ConfigError(
            f"--start={args.start!r} is not a local time like 2026-11-30T08:20"
        ) from None
    source = None
    if args.mics:
        array = site.adaptive_array
        if array is None:
            raise ConfigError(f"--mics needs [adaptive] enabled with an array in '{site.path}'")
        source = FileSource(args.mics, site.block_size)
        if source.sample_rate != site.sample_rate or source.channels != array.mics:
            source.close()
            raise ConfigError(
                f"--mics '{args.mics}' is {source.channels} channels at {source.sample_rate} Hz; "
                f"allowed: {array.mics} channels (array {array.name!r}) at {site.sample_rate} Hz"
            )
    adaptive = getattr(args, "adaptive", "level")
    pipeline, generator, tap, supervisor = _build(site, source is not None, adaptive)
    frames = int(round(args.seconds * site.sample_rate))
    sink = FileSink(args.simulate, site.sample_rate, generator.zones, frames=frames)
    update_s = site.adaptive.update_s
    last = [0.0]

    def mic_levels():
        if tap is None:
            return None
        ambient = tap.levels_db() if adaptive == "spectral" else tap.levels_dba()
        if ambient is None:
            return None
        # The recording holds only the room; the real microphones also hear the masking.
        if adaptive == "spectral":
            own = supervisor.masking_at_mics_db()  # (mics, bands)
        else:
            own = supervisor.adaptive.masking_at_mics_db(generator.current_level_dba())
        return power_sum_db(np.stack([ambient, own]), axis=0)

    def progress(done: int) -> None:
        t = done / site.sample_rate
        if t - last[0] >= update_s:
            supervisor.tick(start + dt.timedelta(seconds=t), t - last[0], mic_levels())
            last[0] = t

    supervisor.tick(start, update_s)
    clock = SimulatedClock(
        PipelineCallback(pipeline),
        site.sample_rate,
        site.block_size,
        pipeline.channels if source is not None else 0,
        pipeline.output_channels,
        realtime=args.realtime,
    )
    try:
        clock.run(frames, source, sink, progress)
    finally:
        sink.close()
        if source is not None:
            source.close()
    report = pipeline.report(
        telemetry={"site": site.name, "simulated start": start.isoformat(), "calibration": note}
    )
    console = Console()
    console.print(_status_table(supervisor, pipeline))
    print(report.to_text())
    print(f"wrote {args.simulate}: {generator.zones} zones, {args.seconds:g} s")
    if args.report:
        write_reports_json(args.report, [report])
    return 0


def _live(args, holder) -> int:
    import datetime as dt
    import signal
    import time

    from rich.live import Live

    from audio_engine.errors import ConfigError
    from audio_engine.io.device import DeviceStream
    from audio_engine.io.supervisor import DeviceSupervisor
    from audio_engine.latency import write_reports_json

    site, note = _calibrated(holder.config, args.calibration)
    print(note)
    for i, zone in enumerate(site.zones):
        if zone.output_channel != i + 1:
            raise ConfigError(
                f"zones[{i}].output_channel={zone.output_channel}: live playback sends zone N to "
                f"device channel N; allowed here: {i + 1} (reorder the zones)"
            )
    array = site.adaptive_array
    if array is not None and array.device_channels != tuple(range(1, array.mics + 1)):
        raise ConfigError(
            f"arrays.{site.adaptive.array}: channels {list(array.device_channels)}; live capture "
            f"takes the device's first inputs in order, allowed: {list(range(1, array.mics + 1))}"
        )
    pipeline, generator, tap, supervisor = _build(
        site, array is not None, getattr(args, "adaptive", "level")
    )
    mode = "duplex" if tap is not None else "output"
    # A lost device (unplugged, host error, sound-server restart) is noticed by poll() below;
    # the zones go silent at once, so they can only come back through their fade-in: the next
    # tick starts every zone the schedule wants that is not running (docs/reliability.md).
    devices = DeviceSupervisor(
        lambda: DeviceStream(pipeline, mode, site.input_device, site.output_device),
        policy=getattr(args, "on_device_loss", "reopen"),
        retry_s=1.0,
        give_up_s=0.0,  # masking waits for its amplifier for as long as it takes
        on_lost=lambda why: generator.reset(),
    )
    reload_requested = [False]
    signal.signal(signal.SIGHUP, lambda s, f: reload_requested.__setitem__(0, True))
    update_s = site.adaptive.update_s
    supervisor.tick(dt.datetime.now(), update_s)
    devices.start()
    last = time.monotonic()
    next_tick = last + update_s
    deadline = None if args.seconds is None else last + args.seconds
    messages: list[str] = []
    losses, reopens = 0, 0
    try:
        with Live(_status_table(supervisor, pipeline), refresh_per_second=2) as live:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(max(0.0, min(DEVICE_POLL_S, next_tick - time.monotonic())))
                devices.poll()  # raises DeviceError under --on-device-loss exit
                if devices.device_losses != losses:
                    losses = devices.device_losses
                    messages.append(f"device lost ({devices.last_error}): zones silent")
                if devices.reopens != reopens:
                    reopens = devices.reopens
                    messages.append("device back: zones fade in")
                    next_tick = time.monotonic()  # start the zones now, not at the next update
                now = time.monotonic()
                if now < next_tick:
                    for message in messages:  # a device change is told at once
                        live.console.print(message)
                    messages.clear()
                    continue
                supervisor.tick(dt.datetime.now(), now - last)
                last = now
                next_tick = now + update_s
                if reload_requested[0]:
                    reload_requested[0] = False
                    if holder.reload():
                        messages.append(f"reloaded {holder.config.path}")
                        supervisor.apply_site(_calibrated(holder.config, args.calibration)[0])
                    else:
                        messages.append(f"reload refused, running config kept: {holder.last_error}")
                live.update(_status_table(supervisor, pipeline))
                for message in messages:
                    live.console.print(message)
                messages.clear()
        # Fade out while the stream still runs, so the amplifiers never see a cut.
        generator.stop()
        time.sleep(site.fade_out_s + 0.2)
    except KeyboardInterrupt:
        generator.stop()
        time.sleep(site.fade_out_s + 0.2)
    finally:
        devices.stop()
    report = devices.report(pipeline, telemetry={"site": site.name})
    print(report.to_text())
    if args.report:
        write_reports_json(args.report, [report])
    return 0


def run(args: argparse.Namespace) -> int:
    from audio_engine.errors import ConfigError
    from audio_engine.site import SiteConfigHolder

    if args.seconds is not None and not (1.0 <= args.seconds <= 86400.0):
        raise ConfigError(f"--seconds={args.seconds!r} is not in 1..86400")

    holder = SiteConfigHolder.from_path(args.config)
    if args.simulate:
        return _simulate(args, holder)
    return _live(args, holder)
