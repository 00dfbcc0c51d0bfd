"""``audio-engine measure``: a one-off sound level meter reading of a microphone or a recording."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "measure"
ORDER = 45
HELP = "one-off 1/3-octave reading (LAeq, LAF, L10/L90) of a microphone or a WAV recording"
DESCRIPTION = """\
Read a microphone (through PortAudio) or a recording and print a sound level meter reading:
one-third-octave band levels (IEC 61260-1 class 1 filters), LAeq, LCeq, LZeq, LAFmax, LAF10
and LAF90 (IEC 61672-1 class 1 A/C weighting, F time weighting).

Levels are dB SPL when the microphone's sensitivity is known: from --offset-db, or from
--calibration FILE --mic NAME (stored by `audio-engine calibrate` or by --calibrator below);
otherwise dB re digital full-scale RMS (dBFS-RMS).

With --calibrator the input is a recording of a 94 dB / 1 kHz acoustic calibrator on the
microphone: the command prints the microphone's sensitivity and, with --calibration and
--mic, stores it in that calibration file (atomically, the previous kept as .bak).

examples:
  audio-engine measure --file office.wav --offset-db 124.0
  audio-engine measure --seconds 10 --calibration calibration/example_site.calibration.toml --mic "measurement mic"
  audio-engine measure --calibrator --seconds 3 --calibration site.calibration.toml --mic "measurement mic"
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", metavar="WAV", help="measure this recording instead of a device")
    parser.add_argument("--device", help="input device (name substring or index; default: system)")
    parser.add_argument("--channel", type=int, default=1, help="1-based input/file channel")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="recording length from a device, s (1..3600)"
    )
    parser.add_argument(
        "--sample-rate", type=int, default=48000, help="device sample rate, Hz (default 48000)"
    )
    parser.add_argument("--offset-db", type=float, help="dB SPL for 0 dBFS-RMS (mic sensitivity)")
    parser.add_argument("--calibration", metavar="FILE", help="calibration file with the mic")
    parser.add_argument("--mic", metavar="NAME", help="microphone name in the calibration file")
    parser.add_argument(
        "--calibrator",
        action="store_true",
        help="the input is a 94 dB / 1 kHz calibrator: measure the mic's sensitivity",
    )
    parser.add_argument(
        "--calibrator-db", type=float, default=94.0, help="calibrator level, dB SPL (default 94)"
    )
    parser.add_argument("--low-hz", type=float, default=25.0, help="lowest band (nominal Hz)")
    parser.add_argument("--high-hz", type=float, default=20000.0, help="highest band (nominal Hz)")
    parser.add_argument("--json", metavar="PATH", help="also write the reading as JSON")


def _record(args):
    import numpy as np

    from audio_engine.errors import ConfigError
    from audio_engine.io import device
    from audio_engine.io.device import check_settings, import_sounddevice, resolve_device

    if not 1.0 <= args.seconds <= 3600.0:
        raise ConfigError(f"--seconds={args.seconds!r} is not in 1..3600")
    sd = import_sounddevice()
    endpoint = resolve_device(args.device, "input")
    if not 1 <= args.channel <= endpoint.max_channels:
        raise ConfigError(
            f"--channel={args.channel} is not in 1..{endpoint.max_channels} of {endpoint.describe()}"
        )
    check_settings(endpoint, args.sample_rate, args.channel)
    print(f"recording {args.seconds:g} s from {endpoint.describe()} channel {args.channel} ...")
    # A PulseAudio source chosen by name is reached through ALSA's 'pulse' device.
    with device._pulse_routing(endpoint):
        data = sd.rec(
            int(args.seconds * args.sample_rate),
            samplerate=args.sample_rate,
            mapping=[args.channel],
            device=endpoint.index,
            dtype="float32",
            blocking=True,
        )
    return np.asarray(data[:, 0]), args.sample_rate, f"device {endpoint.describe()}"


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from audio_engine.calibration import (
        MicCalibrationRecord,
        load_calibration,
        now_iso,
        save_calibration,
    )
    from audio_engine.dsp.levels import (
        calibrate_microphone,
        leq_db,
        percentile_levels_db,
        time_weighted_level_db,
    )
    from audio_engine.dsp.octave import third_octave_levels_db
    from audio_engine.errors import ConfigError

    if args.file:
        from audio_engine.io.files import read_audio

        audio, sample_rate = read_audio(args.file)
        if not 1 <= args.channel <= audio.shape[1]:
            raise ConfigError(
                f"--channel={args.channel} is not in 1..{audio.shape[1]} of {args.file}"
            )
        signal = audio[:, args.channel - 1].astype(np.float64)
        source = f"file {args.file} channel {args.channel}"
    else:
        signal, sample_rate, source = _record(args)
    if not np.all(np.isfinite(signal)):
        raise ConfigError(f"{source} contains NaN or Inf samples")

    calibration = load_calibration(args.calibration) if args.calibration else None
    if args.calibration and not args.mic:
        raise ConfigError("--calibration needs --mic NAME (which microphone)")

    if args.calibrator:
        mic = calibrate_microphone(signal, sample_rate, calibrator_db_spl=args.calibrator_db)
        print(f"source: {source}")
        print(
            f"microphone sensitivity: {mic.sensitivity_dbfs_per_pa:.2f} dBFS/Pa; SPL offset "
            f"{mic.spl_offset_db:.2f} dB (tone {mic.tone_level_db:.2f} dBFS-RMS, steady to "
            f"{mic.spread_db:.2f} dB)"
        )
        if calibration is not None:
            record = MicCalibrationRecord(
                args.mic,
                mic.spl_offset_db,
                mic.sensitivity_dbfs_per_pa,
                args.calibrator_db,
                now_iso(),
            )
            save_calibration(args.calibration, calibration.with_mic(record))
            print(f"stored for microphone '{args.mic}' in {args.calibration}")
        if args.json:
            Path(args.json).write_text(json.dumps({"source": source, **mic.__dict__}, indent=1))
        return 0

    offset, unit = 0.0, "dBFS-RMS"
    if args.offset_db is not None:
        if not np.isfinite(args.offset_db) or not 60.0 <= args.offset_db <= 200.0:
            raise ConfigError(f"--offset-db={args.offset_db!r} is not in 60..200 dB")
        offset, unit = args.offset_db, "dB SPL"
    elif calibration is not None:
        record = calibration.mic(args.mic)
        if record is None:
            raise ConfigError(
                f"--mic={args.mic!r} is not in {args.calibration}; microphones: "
                f"{[m.name for m in calibration.mics]}"
            )
        offset, unit = record.spl_offset_db, "dB SPL"

    settle_s = min(0.5, 0.25 * len(signal) / sample_rate)
    nominal, bands = third_octave_levels_db(
        signal, sample_rate, args.low_hz, args.high_hz, settle_s=settle_s, offset_db=offset
    )
    skip = int(settle_s * sample_rate)
    reading = {
        "source": source,
        "sample_rate": sample_rate,
        "seconds": round(len(signal) / sample_rate, 3),
        "unit": unit,
        "spl_offset_db": offset,
        "LAeq": leq_db(signal[skip:], sample_rate, "A", offset),
        "LCeq": leq_db(signal[skip:], sample_rate, "C", offset),
        "LZeq": leq_db(signal[skip:], sample_rate, "Z", offset),
        "LAFmax": float(
            np.max(
                time_weighted_level_db(signal, sample_rate, "A", "F", offset)[
                    max(1, int(settle_s / 0.01)) :
                ]
            )
        ),
    }
    try:
        stats = percentile_levels_db(signal, sample_rate, (10.0, 90.0), offset_db=offset,
                                     settle_s=settle_s)  # fmt: skip
        reading["LAF10"], reading["LAF90"] = stats[10.0], stats[90.0]
    except ConfigError:
        reading["LAF10"] = reading["LAF90"] = None
    reading["bands_hz"] = [float(f) for f in nominal]
    reading["band_levels"] = [round(float(v), 2) for v in bands]

    print(f"source: {source}, {reading['seconds']:g} s at {sample_rate} Hz; levels in {unit}")
    for key in ("LAeq", "LCeq", "LZeq", "LAFmax", "LAF10", "LAF90"):
        value = reading[key]
        print(f"  {key:7s} {'n/a' if value is None else f'{value:6.1f}'}")
    print("  one-third-octave bands:")
    for f, v in zip(nominal, bands, strict=True):
        label = f"{f:g} Hz" if f < 1000 else f"{f / 1000:g} kHz"
        print(f"    {label:>9s} {v:6.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(reading, indent=1), encoding="utf-8")
        print(f"written: {args.json}")
    return 0
