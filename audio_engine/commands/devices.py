"""``audio-engine devices``: the sound cards PortAudio sees, and the sound server's sinks/sources."""

from __future__ import annotations

import argparse

NAME = "devices"
ORDER = 50
HELP = "list audio devices: index, name, host API, channels, sample rates, latency"
DESCRIPTION = """\
List every PortAudio device with its index, host API, input/output channels, the sample rates
it accepts (probed: 8000..96000 Hz) and its default low/high latency. `>` marks the default
input, `<` the default output. Use the index or any unique part of the name with
`audio-engine headset --input ... --output ...`.

If a PulseAudio/PipeWire server runs, its sinks and sources are listed too: those names work as
--input/--output as well (reached through PortAudio's ALSA 'pulse' device).

examples:
  audio-engine devices
  audio-engine devices --no-probe --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="do not probe each device's sample rates (faster; some drivers are slow to open)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from audio_engine.io.device import list_devices, sound_server_names

    devices = list_devices(probe_rates=not args.no_probe)
    sinks, sources = sound_server_names("output"), sound_server_names("input")
    if args.json:
        payload = {
            "devices": [asdict(d) for d in devices],
            "sound_server": {"sinks": sinks, "sources": sources},
        }
        print(json.dumps(payload, indent=2))
        return 0
    console = Console()
    if not devices:
        console.print(
            "PortAudio sees no audio device: no sound card, and no sound server behind ALSA's "
            "'pulse'/'default' devices. Start PulseAudio/PipeWire or plug in a headset."
        )
        return 1
    table = Table(title="PortAudio devices", title_justify="left")
    for column in ("", "index", "name", "host API", "in", "out", "rates (Hz)", "latency ms"):
        table.add_column(column)
    for d in devices:
        mark = (">" if d.is_default_input else " ") + ("<" if d.is_default_output else " ")
        rates = sorted(set(d.input_sample_rates) | set(d.output_sample_rates))
        if args.no_probe:
            rate_text = f"default {d.default_sample_rate:g}"
        else:
            rate_text = ", ".join(f"{r // 1000}k" if r % 1000 == 0 else str(r) for r in rates)
        low = max(d.default_low_latency_s) * 1e3
        high = max(d.default_high_latency_s) * 1e3
        table.add_row(
            mark,
            str(d.index),
            d.name,
            d.hostapi,
            str(d.max_input_channels),
            str(d.max_output_channels),
            rate_text or "none",
            f"{low:.1f} / {high:.1f}",
        )
    console.print(table)
    if sinks or sources:
        console.print("Sound-server sinks (outputs): " + ", ".join(sinks))
        console.print("Sound-server sources (inputs): " + ", ".join(sources))
    return 0
