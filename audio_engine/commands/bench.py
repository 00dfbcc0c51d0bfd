"""``audio-engine bench``: per-frame latency of the real pipelines, as a report, JSON and a plot."""

from __future__ import annotations

import argparse

NAME = "bench"
ORDER = 70
HELP = "measure per-frame latency of the headset and masking pipelines (JSON, histogram, peers)"
DESCRIPTION = """\
Run the real pipelines — headset noise suppression and office masking (generator + output
ceiling) — block by block on the simulated real-time clock, with realistic input (speech over
office babble, HVAC and keyboard noise), and print each pipeline's per-frame latency report:
processing time per block p50/p95/p99/p99.9/max against the block deadline
(block / rate), deadline misses, real-time factor, algorithmic latency per stage and in total.

  --json PATH     the report as JSON with a stable schema (audio_engine.bench/1): top-level
                  sample_rate, block_size, machine; per pipeline ("headset", "masking")
                  p50_us, p95_us, p99_us, p999_us, max_us, deadline_misses, realtime_factor,
                  algorithmic_latency_ms (and the rest of the latency report)
  --plot PATH     a PNG histogram of the per-block processing time of each pipeline
  --compare       also time WebRTC NS, SpeexDSP and RNNoise (when installed) per 10 ms frame
                  on the same audio, as ratios to our headset pipeline
  --device NAME   run the pipelines on a sound device instead of the simulated clock
  --roundtrip     with --device: play clicks and measure when they come back through a
                  loopback (or the virtual device on a sound server), next to PortAudio's
                  reported latencies

Timing depends on the machine and on what else runs on it; see docs/benchmarks.md for the
figures on the reference machine and the pytest-benchmark suites.

examples:
  audio-engine bench
  audio-engine bench --seconds 60 --rate 48000 --block 480 --zones 32 --json bench.json --plot bench.png
  audio-engine bench --rate 16000 --block 160 --compare
  audio-engine bench --roundtrip --device CleanSpeaker --input-device CleanSpeaker.monitor
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="seconds of audio per pipeline (default: 10; 0.1..86400)",
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=48000,
        help="sample rate in Hz (default: 48000; 8000, 16000, 24000, 32000, 44100, 48000)",
    )
    parser.add_argument(
        "--block",
        type=int,
        default=480,
        help="block size in frames (default: 480 = 10 ms at 48 kHz)",
    )
    parser.add_argument("--zones", type=int, default=32, help="masking zones (default: 32; 1..64)")
    parser.add_argument(
        "--channels", type=int, default=1, help="headset microphone channels (default: 1; 1..64)"
    )
    parser.add_argument(
        "--pipeline",
        choices=("headset", "masking", "both"),
        default="both",
        help="which pipelines to run (default: both)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the report as JSON to PATH")
    parser.add_argument(
        "--plot", metavar="PATH", help="write a histogram of block times (PNG) to PATH"
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="pace blocks to the wall clock as a sound card would (default: as fast as possible)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also time the installed peer suppressors per 10 ms frame on the same audio",
    )
    parser.add_argument(
        "--device",
        metavar="NAME",
        help="run on this sound device (PortAudio name or index) instead of the simulated clock",
    )
    parser.add_argument(
        "--input-device",
        metavar="NAME",
        help="with --device: record from this device (default: the same as --device)",
    )
    parser.add_argument(
        "--roundtrip",
        action="store_true",
        help="with --device: measure click round-trip latency through a loopback",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the simulated office (default: 1)"
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from audio_engine import bench
    from audio_engine.errors import ConfigError

    bench.check_settings(args.seconds, args.rate, args.block, args.zones, args.channels)
    if (args.roundtrip or args.input_device) and not args.device:
        raise ConfigError("--roundtrip and --input-device need --device NAME")
    console = Console(highlight=False, markup=False, soft_wrap=True)
    names = ("headset", "masking") if args.pipeline == "both" else (args.pipeline,)
    backend = (
        f"device {args.device}"
        if args.device
        else "simulated clock"
        + (" (real-time pace)" if args.realtime else " (as fast as possible)")
    )
    console.print(
        f"audio-engine bench: {args.seconds:g} s at {args.rate} Hz, block {args.block} "
        f"({1e3 * args.block / args.rate:.2f} ms), {args.zones} zones, on the {backend}"
    )
    pipelines, reports = bench.run_pipelines(
        names,
        args.seconds,
        args.rate,
        args.block,
        args.zones,
        args.channels,
        seed=args.seed,
        realtime=args.realtime,
        device=args.device,
        input_device=args.input_device,
        progress=console.print,
    )
    for name in names:
        console.print(reports[name].to_text())
        console.print()
    console.print(bench.verdict_text(reports))
    console.print()
    extra = {}
    if args.compare:
        extra["compare"] = bench.compare_peers(args.seconds, args.seed, progress=console.print)
        console.print(bench.compare_text(extra["compare"]))
        console.print()
    if args.roundtrip:
        extra["roundtrip"] = bench.measure_roundtrip(
            args.device, args.input_device, args.rate, args.block
        )
        console.print(bench.roundtrip_text(extra["roundtrip"]))
        console.print()
    if args.json:
        document = bench.bench_document(
            reports, args.seconds, args.zones, args.channels, backend, extra
        )
        bench.write_json(args.json, document)
        console.print(f"wrote {args.json}")
    if args.plot:
        bench.plot_histograms(pipelines, reports, args.plot)
        console.print(f"wrote {args.plot}")
    return 0
