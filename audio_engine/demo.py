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
from audio_engine.office import noise
from audio_engine.office.speech import demo_speech
from audio_engine.pipeline import Pipeline

#: The headset path runs at the wideband softphone rate with 5 ms blocks.
HEADSET_RATE = 16000
HEADSET_BLOCK = 80


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _fit(signal: np.ndarray, frames: int) -> np.ndarray:
    """Repeat ``signal`` (with a second of silence between repeats) to exactly ``frames``."""
    gap = np.zeros(HEADSET_RATE, np.float32)
    unit = np.concatenate([signal, gap])
    return np.tile(unit, frames // len(unit) + 1)[:frames]


def headset_scene(out_dir: Path, seconds: float, realtime: bool, seed: int) -> LatencyReport:
    """An agent's call picked up in the open office, cleaned by the suppressor."""
    from audio_engine.dsp.suppressor import NoiseSuppressor

    rng = np.random.default_rng(seed)
    frames = int(seconds * HEADSET_RATE)
    speech = _fit(demo_speech(HEADSET_RATE), frames)
    # The headset boom mic hears the agent well above the room: babble from neighbours at 8 dB
    # below the agent, HVAC and keyboard further down, the masking noise just audible.
    room = (
        noise.mix_at_snr(speech, noise.babble(frames, rng, HEADSET_RATE), 8.0)
        + noise.mix_at_snr(speech, noise.hvac(frames, rng, HEADSET_RATE), 18.0)
        + noise.mix_at_snr(speech, noise.keyboard(frames, rng, HEADSET_RATE), 15.0)
        + noise.mix_at_snr(speech, noise.shaped(frames, rng, HEADSET_RATE, -5.0), 20.0)
    )
    noisy = (speech + room).astype(np.float32)[:, None]
    pipeline = Pipeline([NoiseSuppressor(HEADSET_RATE, HEADSET_BLOCK, 1)], name="headset")
    cleaned = run_array(pipeline, noisy, realtime=realtime, compensate_latency=True)
    write_audio(out_dir / "headset_clean_speech.wav", speech, HEADSET_RATE)
    write_audio(out_dir / "headset_mic_noisy.wav", noisy, HEADSET_RATE)
    write_audio(out_dir / "headset_to_softphone.wav", cleaned, HEADSET_RATE)
    return pipeline.report()


SCENES = (("headset", headset_scene),)


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
