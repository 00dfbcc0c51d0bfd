"""``audio-engine calibrate``: auto-calibrate every masking zone to its target, and report."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

NAME = "calibrate"
ORDER = 40
HELP = "auto-calibrate masking zones with a measurement microphone (or --simulate), and report"
DESCRIPTION = """\
Closed-loop calibration of the office masking, zone by zone:

  1. the measurement microphone is calibrated with a 94 dB / 1 kHz acoustic calibrator;
  2. for each zone and each microphone position: the background is measured first (HVAC,
     people and the other zones as they run), then the zone's masking plays and the
     background is subtracted band by band;
  3. per-band EQ is fitted until every one-third-octave band is within ±1 dB of the site's
     target curve (at most 3 iterations), then the level is set to the zone's level_dba;
  4. the calibration (per-zone EQ, level offset, mic sensitivity, date, who) is saved next to
     the site config (atomically, the previous one kept as .bak), and a report is written as
     HTML with plots plus JSON, saying PASS or FAIL per zone, with LAeq per position, the
     spatial spread and the Speech Intelligibility Index / privacy class.

Prompts such as "place the microphone at position 2" wait for Enter on a terminal; with
--simulate or --yes, or when standard input is not a terminal, they are printed and the run
goes on. Exit status: 0 if every zone passes, 1 if one fails, 2 on an error.

examples:
  audio-engine calibrate --config calibration/example_site.toml --simulate
  audio-engine calibrate --config site.toml --simulate --room hard --zone 2 --report /tmp/cal
  audio-engine calibrate --config site.toml --mic "Earthworks M23" --by "A. Kim"
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="SITE.toml", help="the site config")
    parser.add_argument(
        "--zone",
        action="append",
        metavar="N",
        help="calibrate only zone N (1-based number or exact name); repeat for several "
        "(default: every zone)",
    )
    parser.add_argument(
        "--mic",
        default="measurement mic",
        metavar="NAME",
        help="name of the measurement microphone (its sensitivity is stored under this name)",
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="run against the simulated office instead of a sound card (no prompts wait)",
    )
    parser.add_argument(
        "--room",
        default="open-plan",
        help="simulated room: open-plan, meeting-room or hard (default: open-plan)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulation (default 1)")
    parser.add_argument(
        "--positions", type=int, default=2, help="microphone positions per zone, 1..8 (default 2)"
    )
    parser.add_argument(
        "--measure-s",
        type=float,
        default=6.0,
        help="seconds per recording, 1..120 (default 6; longer is steadier in the low bands)",
    )
    parser.add_argument(
        "--talker-distance-m",
        type=float,
        default=3.0,
        help="distance of the normal-effort talker for the SII, m (default 3)",
    )
    parser.add_argument(
        "--report", metavar="DIR", default="calibration_report", help="report folder"
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="calibration file (default: <site>.calibration.toml next to the site config)",
    )
    parser.add_argument("--by", metavar="WHO", help="who measures (default: the login name)")
    parser.add_argument(
        "--reuse-mic",
        action="store_true",
        help="use the --mic sensitivity stored in the calibration file instead of a calibrator",
    )
    parser.add_argument("--yes", action="store_true", help="do not wait at prompts")
    parser.add_argument("--input-device", help="microphone input device (default: the site's)")
    parser.add_argument("--output-device", help="zone output device (default: the site's)")
    parser.add_argument(
        "--input-channel", type=int, default=1, help="1-based microphone input channel"
    )


class DeviceRig:
    """The ``record`` interface on a sound card: play a zone's signal on its output channel and
    record the microphone at the same time (``sounddevice.playrec``). Not real-time code."""

    def __init__(self, site, input_device, output_device, input_channel: int):
        from audio_engine.errors import ConfigError
        from audio_engine.io import device
        from audio_engine.io.device import check_settings, import_sounddevice, resolve_device

        # A PulseAudio source/sink chosen by name is reached through ALSA's 'pulse' device,
        # pointed at it while a stream opens (the device module's routing).
        self._routing = device._pulse_routing

        self.sd = import_sounddevice()
        self.sample_rate = site.sample_rate
        self.input = resolve_device(input_device, "input")
        self.output = resolve_device(output_device, "output")
        self.output_channels = max(z.output_channel for z in site.zones)
        if not 1 <= input_channel <= self.input.max_channels:
            raise ConfigError(
                f"--input-channel={input_channel} is not in 1..{self.input.max_channels} of "
                f"{self.input.describe()}"
            )
        self.input_channel = input_channel
        check_settings(self.input, self.sample_rate, input_channel)
        check_settings(self.output, self.sample_rate, self.output_channels)
        self.channel_of = [z.output_channel for z in site.zones]

    def record(self, zone: int, position: int, outputs, seconds: float):
        import numpy as np

        frames = len(next(iter(outputs.values()))) if outputs else int(seconds * self.sample_rate)
        play = np.zeros((frames, self.output_channels), np.float32)
        for z, signal in (outputs or {}).items():
            play[:, self.channel_of[z] - 1] = signal
        with self._routing(self.input, self.output):
            recording = self.sd.playrec(
                play,
                samplerate=self.sample_rate,
                input_mapping=[self.input_channel],
                device=(self.input.index, self.output.index),
                dtype="float32",
                blocking=True,
            )
        return np.asarray(recording[:, 0], np.float32)

    def calibrator_recording(self, seconds: float = 3.0):
        import numpy as np

        with self._routing(self.input):
            recording = self.sd.rec(
                int(seconds * self.sample_rate),
                samplerate=self.sample_rate,
                mapping=[self.input_channel],
                device=self.input.index,
                dtype="float32",
                blocking=True,
            )
        return np.asarray(recording[:, 0], np.float32)


def _select_zones(site, wanted: list[str] | None) -> list[int]:
    from audio_engine.errors import ConfigError

    if not wanted:
        return list(range(len(site.zones)))
    names = [z.name for z in site.zones]
    chosen = []
    for w in wanted:
        if w.isdigit() and 1 <= int(w) <= len(names):
            chosen.append(int(w) - 1)
        elif w in names:
            chosen.append(names.index(w))
        else:
            raise ConfigError(
                f"--zone={w!r} is not a zone number 1..{len(names)} or a zone name {names}"
            )
    return sorted(set(chosen))


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from audio_engine.autocal import AutoCalibrator, MaskingRenderer, ZoneTarget
    from audio_engine.calibration import (
        Calibration,
        MicCalibrationRecord,
        ZoneCalibration,
        check_fits_site,
        default_calibration_path,
        load_calibration,
        now_iso,
        save_calibration,
    )
    from audio_engine.dsp.levels import CALIBRATOR_DB_SPL, calibrate_microphone
    from audio_engine.errors import CalibrationError, ConfigError
    from audio_engine.report_html import write_report
    from audio_engine.site import load_site_config

    site = load_site_config(args.config)
    zones = _select_zones(site, args.zone)
    if not 1 <= args.positions <= 8:
        raise ConfigError(f"--positions={args.positions} is not in 1..8")
    if not 0.5 <= args.talker_distance_m <= 30:
        raise ConfigError(f"--talker-distance-m={args.talker_distance_m} is not in 0.5..30 m")
    interactive = sys.stdin.isatty() and not (args.yes or args.simulate)
    who = args.by or getpass.getuser()
    out_path = Path(args.out) if args.out else default_calibration_path(site)

    def say(message: str) -> None:
        print(message, flush=True)

    def prompt(message: str) -> None:
        say(f"  >> {message}")
        if interactive:
            input("     press Enter when ready ")

    previous = None
    if out_path.exists():
        try:
            previous = load_calibration(out_path)
            check_fits_site(previous, site)
            say(f"previous calibration: {out_path} ({previous.created}, by {previous.measured_by})")
        except CalibrationError as exc:
            say(f"warning: the existing calibration is not used: {exc}")
            previous = None

    if args.simulate:
        from audio_engine.office.room import ROOMS, SimulatedOffice

        if args.room not in ROOMS:
            raise ConfigError(f"--room={args.room!r} is not one of {sorted(ROOMS)}")
        office = SimulatedOffice(
            args.room, len(site.zones), args.positions, site.sample_rate, seed=args.seed
        )
        record, calibrator_recording = office.record, office.calibrator_recording
        method = (
            f"audio-engine calibrate --simulate (simulated office '{args.room}', seed {args.seed})"
        )
        say(f"simulated office '{args.room}': {office.room.description}")
    else:
        rig = DeviceRig(
            site,
            args.input_device if args.input_device is not None else site.input_device,
            args.output_device if args.output_device is not None else site.output_device,
            args.input_channel,
        )
        record, calibrator_recording = rig.record, rig.calibrator_recording
        method = (
            f"audio-engine calibrate (input {rig.input.describe()}, output {rig.output.describe()})"
        )
        say(f"devices: input {rig.input.describe()}, output {rig.output.describe()}")

    if args.reuse_mic:
        stored = previous.mic(args.mic) if previous else None
        if stored is None:
            raise CalibrationError(
                f"--reuse-mic: microphone {args.mic!r} is not in {out_path}; calibrate it with "
                "the calibrator (drop --reuse-mic)"
            )
        mic_record = stored
        say(
            f"microphone '{args.mic}': stored sensitivity {stored.sensitivity_dbfs_per_pa:.1f} "
            f"dBFS/Pa from {stored.calibrated or 'an earlier run'}"
        )
    else:
        prompt(
            f"put the {CALIBRATOR_DB_SPL:g} dB / 1 kHz calibrator on microphone '{args.mic}' "
            "and switch it on"
        )
        reading = calibrate_microphone(calibrator_recording(3.0), site.sample_rate)
        say(
            f"microphone '{args.mic}': {reading.sensitivity_dbfs_per_pa:.1f} dBFS/Pa "
            f"(SPL offset {reading.spl_offset_db:.2f} dB); remove the calibrator"
        )
        mic_record = MicCalibrationRecord(
            args.mic,
            reading.spl_offset_db,
            reading.sensitivity_dbfs_per_pa,
            CALIBRATOR_DB_SPL,
            now_iso(),
        )

    render = MaskingRenderer(
        site.sample_rate, site.target_nominal_hz, site.target_level_db, len(site.zones), site.seed
    )
    calibrator = AutoCalibrator(
        site.sample_rate,
        site.target_nominal_hz,
        site.target_level_db,
        render,
        record,
        mic_record.spl_offset_db,
        positions=args.positions,
        measure_s=args.measure_s,
        talker_distance_m=args.talker_distance_m,
        prompt=prompt,
        progress=lambda m: say(f"  {m}"),
    )
    start = {z.name: z for z in previous.zones} if previous else {}
    results = []
    for index in zones:
        zone = site.zones[index]
        before = start.get(zone.name)
        say(f"zone {index + 1} '{zone.name}': target {zone.level_dba:g} dBA")
        target = ZoneTarget(
            zone.name,
            zone.level_dba,
            zone.ceiling_dba,
            before.spl_offset_db if before else zone.spl_offset_db,
            before.eq_db if before else zone.eq_db,
        )
        try:
            result = calibrator.calibrate_zone(index, target)
        except CalibrationError as exc:
            say(f"zone {index + 1} '{zone.name}': FAIL: {exc}")
            continue
        results.append(result)
        verdict = "PASS" if result.passed else "FAIL"
        spread = result.spatial_spread_db
        say(
            f"zone {index + 1} '{zone.name}': {verdict} after {result.iterations} iteration(s); "
            f"offset {result.spl_offset_db:.1f} dB, spread {spread:.1f} dB"
            + ("" if result.passed else " — " + "; ".join(result.reasons))
        )

    by_name = dict(start)
    for r in results:
        by_name[r.name] = ZoneCalibration(
            r.name,
            float(np.clip(r.spl_offset_db, 40.0, 140.0)),
            tuple(float(v) for v in np.round(r.eq_db, 2)),
            r.target_dba,
            r.passed,
            r.iterations,
        )
    ordered = tuple(by_name[z.name] for z in site.zones if z.name in by_name)
    mics = previous.mics if previous else ()
    written = None
    if ordered:
        calibration = Calibration(
            site=site.name,
            sample_rate=site.sample_rate,
            bands_hz=tuple(float(f) for f in site.target_nominal_hz),
            zones=ordered,
            mics=mics,
            measured_by=who,
            method=method,
        ).with_mic(mic_record)
        written = save_calibration(out_path, calibration)
        say(f"calibration saved: {written}")
    failed = len(zones) - sum(r.passed for r in results)
    meta = {
        "site": site.name,
        "created": now_iso(),
        "measured_by": who,
        "method": method,
        "microphone": {
            "name": args.mic,
            "spl_offset_db": round(mic_record.spl_offset_db, 2),
            "sensitivity_dbfs_per_pa": round(mic_record.sensitivity_dbfs_per_pa, 2),
            "calibrated": mic_record.calibrated,
        },
        "calibration_file": str(written) if written else "not written (no zone calibrated)",
        "talker": {"vocal_effort": "normal", "distance_m": args.talker_distance_m},
        "zones_requested": [site.zones[i].name for i in zones],
        "zones_failed_to_run": [
            site.zones[i].name for i in zones if site.zones[i].name not in {r.name for r in results}
        ],
    }
    html_path, json_path = write_report(args.report, results, meta)
    if meta["zones_failed_to_run"]:
        say(f"zones that could not be measured: {meta['zones_failed_to_run']}")
    say(f"report: {html_path} and {json_path}")
    say("RESULT: " + ("PASS — every zone on target" if failed == 0 else f"FAIL — {failed} zone(s)"))
    return 0 if failed == 0 else 1
