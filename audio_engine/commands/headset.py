"""``audio-engine headset``: headset microphone → noise suppressor → virtual microphone, live."""

from __future__ import annotations

import argparse

NAME = "headset"
ORDER = 25
HELP = "run the noise suppressor live: headset mic -> virtual microphone (or any output)"
DESCRIPTION = """\
Run the headset noise suppressor on a real device, in real time:

  headset microphone (--input) -> NoiseSuppressor -> --output
  (--output virtual, the default: the virtual microphone softphones record, see
   `audio-engine virtual-mic`; it is created if missing)

With --receive, the receive path runs too, as its own pipeline with its own latency report:
the softphone plays into the virtual speaker, the engine reads its monitor, applies the hearing
protection (ear levels from --headset-profile) and plays to the headset (--receive-output). The
day's A-weighted dose and every limiting event are logged (--log-dir) for
`audio-engine hearing-report`; dose warnings are printed as they happen.

With --array CONFIG, --input is a microphone array: its channels go through the beamformer
(steered to the agent's mouth as CONFIG says) with the suppressor as post-filter.

A lost device (unplugged headset, restarted sound server) is counted in the report and reopened
when it comes back (--on-device-loss exit: exit with status 2 instead).

A one-line live status shows the input peak level, the voice-activity probability, the
estimated SNR, the attenuation applied, the p99 processing time per block and the xrun count.
Ctrl-C (or SIGTERM) stops cleanly and prints the latency report(s).

Devices: an index or any unique part of a name from `audio-engine devices`, or the name of a
PulseAudio/PipeWire source/sink (e.g. the headset's `alsa_input.usb-...` source).

Latency: PortAudio is asked for --latency seconds per direction (default 0.05, the setting
measured to deliver every sample intact through PulseAudio; 'low', 0.04 and 0.08 s were
measured to slip samples without any xrun flag). See docs/virtual_mic.md.

examples:
  audio-engine headset --input "USB Headset"
  audio-engine headset --input alsa_input.usb-Jabra.mono-fallback --attenuation-db 20
  audio-engine headset --input 3 --output "CABLE Input" --report headset.json   (Windows)
  audio-engine headset --input Jabra --receive --receive-output Jabra
  audio-engine headset --input Jabra --receive --headset-profile generic-amplified-qd
  audio-engine headset --input "Desk Array" --array calibration/example_array.toml
"""

#: Status line refresh period: often enough to watch, rare enough to cost nothing.
STATUS_PERIOD_S = 0.5


def _latency(text: str):
    if text in ("low", "high"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--latency={text!r} is not 'low', 'high' or seconds in 0..1"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", default="default", metavar="NAME", help="headset microphone (default: default)"
    )
    parser.add_argument(
        "--output",
        default="virtual",
        metavar="virtual|NAME",
        help="where the clean signal goes (default: virtual = the virtual microphone)",
    )
    parser.add_argument(
        "--mic-name",
        default="CleanMic",
        metavar="NAME",
        help="the virtual microphone --output virtual targets (default: CleanMic)",
    )
    parser.add_argument(
        "--attenuation-db",
        type=float,
        default=None,
        metavar="N",
        help="most noise attenuation in dB, 0..60 (default: the suppressor's, 25)",
    )
    parser.add_argument(
        "--rate", type=int, default=48000, metavar="R", help="sample rate in Hz (default: 48000)"
    )
    parser.add_argument(
        "--block",
        type=int,
        default=480,
        metavar="B",
        help="frames per block (default: 480 = 10 ms at 48 kHz)",
    )
    parser.add_argument(
        "--latency",
        type=_latency,
        default=None,
        metavar="S",
        help="PortAudio latency per direction: seconds, 'low' or 'high' (default: 0.05)",
    )
    parser.add_argument(
        "--input-channels",
        type=int,
        default=1,
        metavar="N",
        help="channels to capture from --input; the first is processed (default: 1; use 2 for "
        "a headset that only opens in stereo)",
    )
    parser.add_argument(
        "--two-streams",
        action="store_true",
        help="run capture and playback as two PortAudio streams joined by a ring buffer "
        "(always so for two different devices); see docs/virtual_mic.md",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=0.0,
        metavar="N",
        help="stop after N seconds (default: 0 = run until Ctrl-C)",
    )
    parser.add_argument(
        "--report", metavar="PATH", help="write the latency report(s) as JSON to PATH on exit"
    )
    parser.add_argument(
        "--receive",
        nargs="?",
        const="virtual",
        default=None,
        metavar="SOURCE",
        help="also run the receive path from SOURCE (default: virtual = the virtual speaker's "
        "monitor)",
    )
    parser.add_argument(
        "--speaker-name",
        default="CleanSpeaker",
        metavar="NAME",
        help="the virtual speaker --receive virtual reads (default: CleanSpeaker)",
    )
    parser.add_argument(
        "--receive-output",
        default="default",
        metavar="NAME",
        help="the headset's earpiece for the receive path (default: default)",
    )
    parser.add_argument(
        "--headset-profile",
        metavar="NAME|PATH",
        help="headset profile for the receive path's ear levels (a name from calibration/headsets "
        "or a .toml file; default: generic-usb-office)",
    )
    parser.add_argument(
        "--log-dir",
        metavar="DIR",
        help="where the receive path's daily dose and limiting events are logged (default: the "
        "per-user log folder that `audio-engine hearing-report` reads)",
    )
    parser.add_argument(
        "--array",
        metavar="CONFIG",
        help="use a microphone array at --input: TOML with its geometry and channel mapping "
        "(see calibration/example_array.toml); beamformer + suppressor, mono out",
    )
    parser.add_argument(
        "--array-name",
        metavar="NAME",
        help="which [arrays.NAME] table of CONFIG (default: the only one)",
    )
    parser.add_argument(
        "--beamformer",
        choices=("mvdr", "delay-and-sum"),
        default="mvdr",
        help="beamformer for --array (default: mvdr, adaptive)",
    )
    parser.add_argument(
        "--on-device-loss",
        choices=("reopen", "exit"),
        default="reopen",
        help="when a device vanishes (unplugged, sound server restarted): reopen it when it "
        "comes back (default) or exit with status 2",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no live status line (the report is still printed)"
    )


def _status_text(supervisors, suppressor, pipeline) -> str:
    import math

    main = supervisors[0]
    if not main.running:
        return (
            f"headset device lost — reopening (attempt {main.reopen_attempts}); "
            f"last error: {main.last_error}"
        )
    peak = main.stream.read_input_peak()
    level_db = 20.0 * math.log10(peak) if peak > 1e-10 else -200.0
    xruns = sum(int(s.stream.status_flags[0]) for s in supervisors if s.stream is not None)
    # Clamped for display: digital silence gives -inf level and an SNR of -250 dB.
    level_db = max(-99.0, level_db)
    snr_db = min(99.0, max(-99.0, float(suppressor.snr_db[0])))
    return (
        f"in {level_db:5.1f} dBFS  VAD {float(suppressor.speech_probability[0]):4.2f}  "
        f"SNR {snr_db:5.1f} dB  att {float(suppressor.applied_attenuation_db[0]):4.1f} dB  "
        f"p99 {pipeline.meter.recent_percentile_us(99.0):5.0f} µs  xruns {xruns}"
    )


def run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import time

    from rich.console import Console
    from rich.live import Live

    from audio_engine.errors import ConfigError
    from audio_engine.io.device import DEFAULT_LATENCY_S, DeviceStream
    from audio_engine.io.supervisor import DeviceSupervisor
    from audio_engine.latency import write_reports_json
    from audio_engine.pipelines import build_headset_pipeline, build_receive_pipeline

    if not 0.0 <= args.seconds <= 7 * 24 * 3600.0:
        raise ConfigError(f"--seconds={args.seconds!r} is not in 0..604800 (0 = until Ctrl-C)")
    if args.attenuation_db is not None and not 0.0 <= args.attenuation_db <= 60.0:
        raise ConfigError(f"--attenuation-db={args.attenuation_db!r} is not in 0..60 dB")
    latency = DEFAULT_LATENCY_S if args.latency is None else args.latency
    bridge = True if args.two_streams else None

    output = args.output
    if output == "virtual":
        from audio_engine.io.virtual_device import create_virtual_mic

        output = create_virtual_mic(args.mic_name).play_to
    input_channels = args.input_channels
    if args.array:
        from audio_engine.array_config import check_device_channels, load_array
        from audio_engine.dsp.beamformer import build_array_pipeline
        from audio_engine.dsp.suppressor import DEFAULT_ATTENUATION_DB
        from audio_engine.io.device import resolve_device

        array = load_array(args.array, args.array_name)
        endpoint = resolve_device(args.input, "input")
        check_device_channels(array, endpoint.max_channels, endpoint.describe())
        # The array's 1-based mapping picks its microphones from the first N device inputs.
        input_channels = max(array.device_channels)
        attenuation_db = (
            DEFAULT_ATTENUATION_DB if args.attenuation_db is None else args.attenuation_db
        )
        pipeline = build_array_pipeline(
            array, args.rate, args.block, attenuation_db, input_channels=input_channels,
            beamformer=args.beamformer,
        )  # fmt: skip
    else:
        pipeline = build_headset_pipeline(args.rate, args.block, 1, args.attenuation_db)
    suppressor = next(s for s in pipeline.stages if hasattr(s, "speech_probability"))

    def opener(pipe, source, sink, input_channels=1):
        # Devices by name, so a headset re-plugged under a new index is found on reopen.
        return lambda: DeviceStream(
            pipe,
            "duplex",
            source,
            sink,
            latency=latency,
            bridge=bridge,
            input_channels=input_channels,
        )

    pipelines = [pipeline]
    openers = [opener(pipeline, args.input, output, input_channels)]
    hearing_log = None
    if args.receive is not None:
        from audio_engine.hearing_log import HearingLog

        source = args.receive
        if source == "virtual":
            from audio_engine.io.virtual_device import create_virtual_speaker

            source = create_virtual_speaker(args.speaker_name).record_from
        receive = build_receive_pipeline(args.rate, args.block, 1, profile=args.headset_profile)
        pipelines.append(receive)
        openers.append(opener(receive, source, args.receive_output))

        def tell_agent(record: dict) -> None:  # from the log thread, never the audio thread
            if str(record.get("kind", "")).startswith("dose"):
                print(f"hearing protection: {record}", file=sys.stderr, flush=True)

        hearing_log = HearingLog(receive.stages[0], directory=args.log_dir, notify=tell_agent)
    # A device that comes back starts from a clean state (filters, noise estimates, delay lines).
    supervisors = [
        DeviceSupervisor(open_stream, policy=args.on_device_loss, on_restored=pipe.reset)
        for open_stream, pipe in zip(openers, pipelines, strict=True)
    ]

    console = Console(stderr=True)

    def on_sigterm(signum, frame):  # a service manager's stop is a Ctrl-C: report, then exit
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    interrupted = False
    started = time.monotonic()
    live = None
    ran = False  # whether any stream started: a run that never started has nothing to report
    try:
        if hearing_log is not None:
            hearing_log.start()  # restores today's dose before the first block
        for supervisor, pipe in zip(supervisors, pipelines, strict=True):
            supervisor.start()
            ran = True
            console.print(f"{pipe.name}: {supervisor.stream.describe()}", highlight=False)
        if not args.quiet and console.is_terminal:
            live = Live("", console=console, refresh_per_second=4, transient=False)
            live.start()
        while args.seconds <= 0.0 or time.monotonic() - started < args.seconds:
            time.sleep(STATUS_PERIOD_S)
            for supervisor in supervisors:
                supervisor.poll()  # a lost device: counted, reopened (or DeviceError on exit)
            if args.quiet:
                continue
            text = _status_text(supervisors, suppressor, pipeline)
            if live is not None:
                live.update(text)
            else:
                print(text, file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        if live is not None:
            live.stop()
        # Stop the audio first, report (PortAudio's latency is still known), then close.
        for supervisor in supervisors:
            if supervisor.stream is not None:
                supervisor.stream.stop()
        reports = [
            supervisor.report(pipe) for supervisor, pipe in zip(supervisors, pipelines, strict=True)
        ]
        for supervisor in supervisors:
            supervisor.stop()
        if hearing_log is not None:
            hearing_log.stop()  # writes the events still open and a final dose record
        # Every way out (time up, Ctrl-C, a lost device under --on-device-loss exit) reports.
        for r in reports if ran else []:
            print(r.to_text())
        if args.report and ran:
            write_reports_json(args.report, reports, extra={"requested_latency_s": latency})
    return 130 if interrupted else 0
