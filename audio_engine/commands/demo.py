"""``audio-engine demo``: a simulated minute of the office, no sound card needed."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "demo"
ORDER = 10
HELP = "simulate a minute of the office (masking zones, a noisy headset call, the receive path)"
DESCRIPTION = """\
Simulate the office headless on the simulated real-time clock, through the real pipelines:

  * masking: every zone of the example site (calibration/example_site.toml) rendered at its
    scheduled level, one WAV channel per zone (what each zone's amplifier would receive);
  * headset: an agent's call (packaged English and Korean speech) picked up with neighbours'
    babble, HVAC, keyboard clicks and the masking noise, cleaned by the noise suppressor;
  * receive: a caller who shouts and a line squeal, through the hearing protection.

Writes the WAV files and the latency reports (text and JSON) to the output folder and prints
the per-frame latency report of every pipeline.

examples:
  audio-engine demo
  audio-engine demo --seconds 20 --out /tmp/demo --realtime
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        default="demo_output",
        metavar="DIR",
        help="folder for the WAV files and reports (default: ./demo_output)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="length of the simulated office run in seconds (default: 60; 1..3600)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="pace blocks to the wall clock as a sound card would (default: as fast as possible)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the simulated office (default: 1)"
    )
    parser.add_argument(
        "--report", metavar="PATH", help="also write the latency reports as JSON to PATH"
    )


def run(args: argparse.Namespace) -> int:
    from audio_engine.demo import run_demo
    from audio_engine.errors import ConfigError

    if not 1.0 <= args.seconds <= 3600.0:
        raise ConfigError(f"--seconds={args.seconds!r} is not in 1..3600")
    run_demo(
        Path(args.out),
        seconds=args.seconds,
        realtime=args.realtime,
        seed=args.seed,
        report_path=args.report,
    )
    return 0
