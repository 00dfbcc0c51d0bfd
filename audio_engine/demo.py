"""The demo: a simulated stretch of the office through the real pipelines, headless.

Each scene builds the same pipeline the live commands build, runs it on the simulated clock
(:func:`audio_engine.engine.run_array`), writes what it produced as WAV and returns its latency
report. Nothing here is a stand-in: a scene whose stage is missing is not run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audio_engine.engine import run_array
from audio_engine.io.files import write_audio
from audio_engine.latency import LatencyReport, write_reports_json
from audio_engine.office.noise import headset_room_noise
from audio_engine.office.speech import demo_speech, loop_with_pauses

#: The headset path runs at the wideband softphone rate with 5 ms blocks.
HEADSET_RATE = 16000
HEADSET_BLOCK = 80

#: Masking renders at 48 kHz with 10 ms blocks, as the ceiling speakers' amplifiers get it.
MASKING_RATE = 48000
MASKING_BLOCK = 480


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def headset_scene(out_dir: Path, seconds: float, realtime: bool, seed: int) -> LatencyReport:
    """An agent's call picked up in the open office, cleaned by the suppressor."""
    from audio_engine.pipelines import build_headset_pipeline

    frames = int(seconds * HEADSET_RATE)
    speech = loop_with_pauses(demo_speech(HEADSET_RATE), frames, HEADSET_RATE)
    room = headset_room_noise(speech, np.random.default_rng(seed), HEADSET_RATE)
    noisy = (speech + room)[:, None]
    pipeline = build_headset_pipeline(HEADSET_RATE, HEADSET_BLOCK, 1)
    cleaned = run_array(pipeline, noisy, realtime=realtime, compensate_latency=True)
    write_audio(out_dir / "headset_clean_speech.wav", speech, HEADSET_RATE)
    write_audio(out_dir / "headset_mic_noisy.wav", noisy, HEADSET_RATE)
    write_audio(out_dir / "headset_to_softphone.wav", cleaned, HEADSET_RATE)
    return pipeline.report()


def masking_scene(out_dir: Path, seconds: float, realtime: bool, seed: int) -> LatencyReport:
    """Every zone of the example site, one WAV channel per zone amplifier."""
    from audio_engine.pipelines import build_masking_pipeline
    from audio_engine.resources import calibration_file
    from audio_engine.site import load_site_config

    site = load_site_config(calibration_file("example_site.toml"))
    pipeline = build_masking_pipeline(site, MASKING_RATE, MASKING_BLOCK)
    zones = run_array(pipeline, None, frames=int(seconds * MASKING_RATE), realtime=realtime)
    write_audio(out_dir / "masking_zones.wav", zones, MASKING_RATE)
    # Level each zone reaches at its listener: output RMS through the zone's calibration offset.
    steady = zones[min(len(zones) // 2, int(5 * MASKING_RATE)) :]
    rms_dbfs = 10.0 * np.log10(np.mean(np.square(steady, dtype=np.float64), axis=0) + 1e-30)
    levels = {
        z.name: f"{r + z.spl_offset_db:.1f} dBA (set {z.level_dba:.1f}, ceiling {z.ceiling_dba:.1f})"
        for z, r in zip(site.zones, rms_dbfs, strict=True)
    }
    return pipeline.report(telemetry={"zone levels at listener": levels})


def receive_scene(out_dir: Path, seconds: float, realtime: bool, seed: int) -> LatencyReport:
    """A caller who starts calm, shouts, and whose line squeals: the hearing protection."""
    from audio_engine.pipelines import build_receive_pipeline

    frames = int(seconds * HEADSET_RATE)
    caller = loop_with_pauses(demo_speech(HEADSET_RATE), frames, HEADSET_RATE)
    pipeline = build_receive_pipeline(HEADSET_RATE, HEADSET_BLOCK, 1)
    protector = pipeline.stages[0]
    profile = protector.profile
    # Calm speech at about 70 dB SPL at the ear; the middle third shouted 20 dB louder; a 2.8 kHz
    # feedback squeal 30 dB over the calm level for half a second near the end.
    calm_rms = 10.0 ** ((70.0 - profile.sensitivity_db_spl) / 20.0) / np.sqrt(2.0)
    active = caller[np.abs(caller) > 0.01 * np.abs(caller).max()]
    line = caller * (calm_rms / float(np.sqrt(np.mean(np.square(active)))))
    line[frames // 3 : 2 * frames // 3] *= 10.0
    t0 = int(0.85 * frames)
    n = min(HEADSET_RATE // 2, frames - t0)
    t = np.arange(n) / HEADSET_RATE
    line[t0 : t0 + n] += (calm_rms * np.sqrt(2.0) * 10 ** (30 / 20)) * np.sin(
        2 * np.pi * 2800.0 * t
    )
    line = np.clip(line, -1.0, 1.0).astype(np.float32)[:, None]
    ear = run_array(pipeline, line, realtime=realtime, compensate_latency=True)
    write_audio(out_dir / "receive_from_caller.wav", line, HEADSET_RATE)
    write_audio(out_dir / "receive_to_ear.wav", ear, HEADSET_RATE)

    def peak_db_spl(x: np.ndarray) -> str:
        return f"{profile.sensitivity_db_spl + 20 * np.log10(float(np.abs(x).max()) + 1e-12):.1f} dB SPL"

    return pipeline.report(
        telemetry={
            "peak at the ear without protection": peak_db_spl(line),
            "peak at the ear with protection": peak_db_spl(ear),
            "limit": f"{protector.limit_db_spl:.0f} dB SPL ({profile.name})",
        }
    )


SCENES = (("masking", masking_scene), ("headset", headset_scene), ("receive", receive_scene))


def run_demo(
    out_dir: Path,
    seconds: float = 60.0,
    realtime: bool = False,
    seed: int = 1,
    report_path: str | None = None,
) -> list[LatencyReport]:
    """Run every scene, write WAVs and reports into ``out_dir``, print the reports."""
    console = _console()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"[bold]audio-engine demo[/bold]: {seconds:g} s of the simulated office "
        f"({'real-time pace' if realtime else 'as fast as possible'}), writing to {out_dir.resolve()}"
    )
    reports = []
    for name, scene in SCENES:
        with console.status(f"simulating {name}..."):
            report = scene(out_dir, seconds, realtime, seed)
        reports.append(report)
        console.print(report.to_text())
        console.print()
    write_reports_json(out_dir / "latency_report.json", reports)
    (out_dir / "latency_report.txt").write_text("\n\n".join(r.to_text() for r in reports) + "\n")
    if report_path:
        write_reports_json(report_path, reports)
    console.print(
        f"wrote {', '.join(sorted(p.name for p in out_dir.iterdir()))} to {out_dir.resolve()}"
    )
    return reports
