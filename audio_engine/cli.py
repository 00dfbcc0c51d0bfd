"""The ``audio-engine`` command line (also ``python -m audio_engine``).

Every engine error becomes one line on stderr and exit status 2; Ctrl-C exits with 130 after
the command has printed its report.
"""

from __future__ import annotations

import argparse
import sys

from audio_engine import __version__
from audio_engine.commands import command_modules
from audio_engine.errors import AudioEngineError

DESCRIPTION = """\
Real-time audio engine for a call centre: headset noise suppression and a virtual microphone,
office sound masking with calibration, hearing protection on the receive path, and a per-frame
latency report on every run.

Start with `audio-engine demo` (no sound card needed): it simulates a minute of the office and
writes the audio it produced to a folder.
"""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="audio-engine",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"audio-engine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except AudioEngineError as exc:
        print(f"audio-engine {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"audio-engine {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
