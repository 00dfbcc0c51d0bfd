"""``audio-engine virtual-mic``: create, remove or show the virtual microphone (and speaker)."""

from __future__ import annotations

import argparse

NAME = "virtual-mic"
ORDER = 55
HELP = "create/remove/show the virtual microphone softphones pick as 'the clean microphone'"
DESCRIPTION = """\
Manage the virtual microphone on a PulseAudio or PipeWire-pulse server (Linux), via pactl:

  create   a mono null sink <name>_sink (norewinds=1) that `audio-engine headset` plays into,
           and a mono remap source <name> that softphones list as a microphone;
           with --speaker also the virtual speaker: a null sink softphones play into and whose
           monitor `audio-engine headset --receive` reads. Idempotent.
  remove   unload exactly those modules (source before sink). Idempotent.
  status   what exists, its sample format and how many streams use it.

On Windows (VB-Cable) and macOS (BlackHole) the virtual cable is installed once by hand and
the engine targets it by name; see docs/virtual_mic.md.

examples:
  audio-engine virtual-mic create
  audio-engine virtual-mic create --name AgentMic --speaker
  audio-engine virtual-mic status
  audio-engine virtual-mic remove --speaker
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("create", "remove", "status"), help="what to do")
    parser.add_argument(
        "--name", default="CleanMic", help="name of the virtual microphone (default: CleanMic)"
    )
    parser.add_argument(
        "--speaker",
        nargs="?",
        const="CleanSpeaker",
        default=None,
        metavar="NAME",
        help="also the virtual speaker for the receive path (default name: CleanSpeaker)",
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=48000,
        help="sample rate of the virtual devices in Hz (default: 48000)",
    )


def run(args: argparse.Namespace) -> int:
    from audio_engine.io import virtual_device as vd

    if args.action == "create":
        print(vd.create_virtual_mic(args.name, args.rate).to_text())
        if args.speaker:
            print(vd.create_virtual_speaker(args.speaker, args.rate).to_text())
        return 0
    if args.action == "remove":
        unloaded = vd.remove_virtual_mic(args.name)
        print(
            f"virtual microphone '{args.name}': "
            + (f"removed (modules {unloaded})" if unloaded else "nothing to remove")
        )
        if args.speaker:
            unloaded = vd.remove_virtual_speaker(args.speaker)
            print(
                f"virtual speaker '{args.speaker}': "
                + (f"removed (modules {unloaded})" if unloaded else "nothing to remove")
            )
        return 0
    status = vd.virtual_mic_status(args.name)
    print(status.to_text())
    if args.speaker:
        print(vd.virtual_speaker_status(args.speaker).to_text())
    return 0 if status.complete else 1
