"""``audio-engine denoise``: run the headset noise suppressor over an audio file."""

from __future__ import annotations

import argparse

NAME = "denoise"
ORDER = 20
HELP = "remove background noise from an audio file with the headset noise suppressor"
DESCRIPTION = """\
Stream an audio file through the headset noise suppressor, block by block through the same
real-time path a headset uses, and write the cleaned file. The sample rate and the channels are
kept (each channel is cleaned on its own); the output is aligned with the input (the
suppressor's ~5 ms delay is compensated) and written as 32-bit float WAV (OUT must end in
.wav). Supported rates: 8000, 16000, 24000, 32000, 44100, 48000 Hz (no resampling).

Prints the per-frame latency report, with the suppressor's mean speech probability, SNR and
applied attenuation. Long files show a progress bar.

examples:
  audio-engine denoise call.wav call_clean.wav
  audio-engine denoise call.flac call_clean.wav --attenuation-db 15
  audio-engine denoise call.wav clean.wav --report latency.json
  audio-engine denoise desk_array.wav agent.wav --array calibration/example_array.toml

With --array CONFIG the input is a multichannel recording of a microphone array (one channel per
microphone, in the order of the config's mics): the array is steered to the agent's mouth by
the beamformer (MVDR by default) and the suppressor is its post-filter; the output is mono.
"""

#: Files longer than this get a progress bar (seconds of audio).
PROGRESS_MIN_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="audio file soundfile reads (WAV, FLAC...)")
    parser.add_argument("output", metavar="OUT", help="cleaned audio file to write")
    parser.add_argument(
        "--attenuation-db",
        type=float,
        default=None,
        metavar="N",
        help="most the noise is lowered, in dB (0 = unity gain, 0..60; default 25)",
    )
    parser.add_argument(
        "--block-size",
        type=int,
        default=None,
        metavar="FRAMES",
        help="frames per block (default: 10 ms of audio); the output does not depend on it",
    )
    parser.add_argument(
        "--array",
        metavar="CONFIG",
        help="TOML file with the microphone array's geometry (see calibration/example_array.toml); "
        "IN then has one channel per microphone and OUT is mono",
    )
    parser.add_argument(
        "--array-name",
        metavar="NAME",
        help="which [arrays.NAME] table of CONFIG to use (default: the only one)",
    )
    parser.add_argument(
        "--beamformer",
        choices=("mvdr", "delay-and-sum"),
        default="mvdr",
        help="beamformer for --array (default: mvdr, adaptive; delay-and-sum is fixed)",
    )
    parser.add_argument(
        "--report", metavar="PATH", help="also write the latency report as JSON to PATH"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no report")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from audio_engine.dsp.base import SUPPORTED_SAMPLE_RATES
    from audio_engine.dsp.suppressor import DEFAULT_ATTENUATION_DB, NoiseSuppressor
    from audio_engine.engine import run_file
    from audio_engine.errors import AudioFileError, ConfigError
    from audio_engine.io.files import audio_info
    from audio_engine.latency import write_reports_json
    from audio_engine.pipeline import Pipeline

    in_path, out_path = Path(args.input), Path(args.output)
    sample_rate, channels, frames = audio_info(in_path)
    if sample_rate not in SUPPORTED_SAMPLE_RATES:
        raise ConfigError(
            f"'{in_path}' is sampled at {sample_rate} Hz; the suppressor runs natively at "
            f"{list(SUPPORTED_SAMPLE_RATES)} Hz (resample it first, e.g. sox IN -r 16000 OUT)"
        )
    if out_path.suffix.lower() != ".wav":
        raise AudioFileError(
            f"OUT '{out_path}' must end in .wav: the cleaned audio is written as 32-bit float WAV"
        )
    if in_path.resolve() == out_path.resolve():
        raise AudioFileError(f"OUT '{out_path}' is IN: write the cleaned audio to another file")
    block_size = sample_rate // 100 if args.block_size is None else args.block_size
    attenuation_db = DEFAULT_ATTENUATION_DB if args.attenuation_db is None else args.attenuation_db
    if args.array:
        from audio_engine.array_config import check_file_channels, load_array
        from audio_engine.dsp.beamformer import build_array_pipeline

        config = load_array(args.array, args.array_name)
        check_file_channels(config, channels, in_path)
        pipeline = build_array_pipeline(
            config, sample_rate, block_size, attenuation_db, beamformer=args.beamformer
        )
        out_channels = 1
    else:
        suppressor = NoiseSuppressor(
            sample_rate, block_size, channels, attenuation_db=attenuation_db
        )
        pipeline = Pipeline([suppressor], name="denoise")
        out_channels = channels

    progress = None
    bar = None
    if not args.quiet and frames / sample_rate >= PROGRESS_MIN_S:
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task(f"denoising {in_path.name}", total=frames)
        bar.start()

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done)

    try:
        report = run_file(pipeline, in_path, out_path, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    if args.report:
        write_reports_json(args.report, [report])
    if not args.quiet:
        print(report.to_text())
        print(
            f"wrote {out_path} ({frames / sample_rate:.1f} s, {sample_rate} Hz, {out_channels} ch)"
        )
    return 0
