"""The array path's fuller evaluation: SI-SDR and PESQ-WB in simulated offices, printed as a table.

Each scene is ``tests.signals.array_scene``: a pyroomacoustics shoebox office (6 x 5 x 2.7 m),
the array on a desk in the middle, the agent's mouth 0.4 m in front of it and 0.3 m up,
neighbours talking (espeak-ng voices) 1.5 m away at the listed azimuths, eight pink/HVAC sources
in the corners and independent capsule self-noise 30 dB below the agent. Scenes vary the
reverberation time, the neighbours' directions and number, the target-to-talkers ratio (SIR)
and the array (the 4-mic example, a 2-mic pair, an 8-mic circle).

Systems, all at 16 kHz, block 160 (10 ms), suppressor attenuation 25 dB:

- ``mic+NS``: the best single microphone (of the array, chosen per scene with hindsight)
  through the suppressor alone: the baseline of issue 8;
- ``DAS``, ``MVDR``: the beamformer alone; ``DAS+NS``, ``MVDR+NS``: with the suppressor as
  post-filter (``MVDR+NS`` is :func:`audio_engine.dsp.beamformer.build_array_pipeline`).

Every output is scored against the target's image at its own microphone (the reference
microphone for the beamformers) passed through the suppressor's linear part (attenuation 0 dB),
so the suppressor's high-pass is not counted as distortion; scores skip the first 0.5 s
(start-up). ``gain`` is ``MVDR+NS`` minus ``mic+NS``.

A second table takes the first scene and changes the world under the config: capsule
sensitivities off their trims (a fixed 2 / -3 / 0 / 1 pattern scaled to the stated spread),
with and without the MVDR's self-calibration, and the agent's mouth away from ``mouth_m``.

Run from the repository root (about two minutes on 2 cores)::

    python -m benchmarks.eval_array
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "calibration" / "example_array.toml"

#: (label, config path or None for the example, rt60_s, azimuths, sir_db)
SCENES = (
    ("4-mic, RT60 0.3 s, 3 talkers", None, 0.3, (20.0, 150.0, 230.0), 0.0),
    ("4-mic, RT60 0.2 s, 3 talkers", None, 0.2, (20.0, 150.0, 230.0), 0.0),
    ("4-mic, RT60 0.5 s, 3 talkers", None, 0.5, (20.0, 150.0, 230.0), 0.0),
    ("4-mic, RT60 0.3 s, 2 talkers", None, 0.3, (45.0, 200.0), 0.0),
    ("4-mic, RT60 0.3 s, 3 others", None, 0.3, (0.0, 120.0, 300.0), 0.0),
    ("4-mic, RT60 0.3 s, SIR +6 dB", None, 0.3, (20.0, 150.0, 230.0), 6.0),
    ("2-mic pair, RT60 0.3 s", "pair", 0.3, (20.0, 150.0, 230.0), 0.0),
    ("8-mic circle, RT60 0.3 s", "circle8", 0.3, (20.0, 150.0, 230.0), 0.0),
)


def _write_arrays(folder: Path) -> dict[str, Path]:
    """The comparison arrays as TOML: an 8 cm pair across the mouth axis, an 8-mic 4 cm circle."""
    head = '[array]\nname = "{0}"\nmouth_m = [0.0, 0.40, 0.30]\n'
    mic = "[[array.mics]]\nposition_m = [{0:.4f}, {1:.4f}, 0.0]\nchannel = {2}\n"
    pair = head.format("pair") + mic.format(-0.04, 0.0, 1) + mic.format(0.04, 0.0, 2)
    angles = 2 * np.pi * np.arange(8) / 8
    circle = head.format("circle8") + "".join(
        mic.format(0.04 * np.cos(a), 0.04 * np.sin(a), i + 1) for i, a in enumerate(angles)
    )
    paths = {"pair": folder / "pair.toml", "circle8": folder / "circle8.toml"}
    paths["pair"].write_text(pair)
    paths["circle8"].write_text(circle)
    return paths


def evaluate(config_path: Path, rt60_s: float, azimuths, sir_db: float) -> dict:
    """Scores of every system in one scene: {system: (si_sdr_db, pesq_wb)}."""
    from pesq import pesq

    from audio_engine.dsp.beamformer import build_array_pipeline
    from audio_engine.dsp.suppressor import NoiseSuppressor
    from audio_engine.engine import run_array
    from audio_engine.pipeline import Pipeline
    from tests import signals

    sample_rate, block = 16000, 160
    scene = signals.array_scene(config_path, sample_rate, 6.0, tuple(azimuths), 1.5, rt60_s, sir_db)
    config, ref = scene["config"], scene["reference_mic"]
    mixture, target = scene["mixture"], scene["target"]
    keep = slice(sample_rate // 2, None)

    def suppress(x: np.ndarray, attenuation_db: float) -> np.ndarray:
        ns = NoiseSuppressor(sample_rate, block, 1, attenuation_db=attenuation_db)
        return run_array(Pipeline([ns]), x[:, None], compensate_latency=True)[:, 0]

    def score(clean: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
        c, e = clean[keep], estimate[keep]
        return signals.si_sdr_db(c, e), float(pesq(sample_rate, c, e, "wb"))

    clean = [suppress(target[:, m], 0.0) for m in range(config.mics)]
    singles = [score(clean[m], suppress(mixture[:, m], 25.0)) for m in range(config.mics)]
    raw = [score(clean[m], mixture[:, m]) for m in range(config.mics)]
    results = {
        "mic": max(raw),
        "mic+NS": max(singles),
    }
    for label, kind in (("DAS", "delay-and-sum"), ("MVDR", "mvdr")):
        for post in (None, 25.0):
            pipeline = build_array_pipeline(config, sample_rate, block, post, beamformer=kind)
            y = run_array(pipeline, mixture, compensate_latency=True)[:, 0]
            results[label + ("+NS" if post else "")] = score(clean[ref], y)
    return results


def robustness() -> list[str]:
    """MVDR+NS SI-SDR in the first scene when the world differs from the config."""
    import dataclasses

    from audio_engine.dsp.beamformer import ArrayInput, MvdrBeamformer
    from audio_engine.dsp.suppressor import NoiseSuppressor
    from audio_engine.engine import run_array
    from audio_engine.pipeline import Pipeline
    from tests import signals

    sample_rate, block = 16000, 160
    scene = signals.array_scene(EXAMPLE, sample_rate)
    config, ref = scene["config"], scene["reference_mic"]
    keep = slice(sample_rate // 2, None)
    reference = run_array(
        Pipeline([NoiseSuppressor(sample_rate, block, 1, attenuation_db=0.0)]),
        scene["target"][:, ref : ref + 1],
        compensate_latency=True,
    )[keep, 0]

    def chain(steer_config, mixture, calibration_s) -> float:
        stages = [
            ArrayInput(sample_rate, block, config),
            MvdrBeamformer(
                sample_rate, block, steer_config, calibration_time_constant_s=calibration_s
            ),
            NoiseSuppressor(sample_rate, block, 1, attenuation_db=25.0),
        ]
        y = run_array(Pipeline(stages), mixture, compensate_latency=True)[keep, 0]
        return signals.si_sdr_db(reference, y)

    rows = ["| condition | self-calibration on | off |", "|---|---|---|"]
    pattern_db = np.array([2.0, -3.0, 0.0, 1.0]) / 3.0  # capsule errors, scaled below
    for spread_db in (0.0, 1.0, 2.0, 3.0):
        gains = 10 ** (pattern_db * spread_db / 20)
        mixture = (scene["mixture"] * gains).astype(np.float32)
        rows.append(
            f"| capsules off by up to {spread_db:.0f} dB | {chain(config, mixture, 10.0):.1f} | "
            f"{chain(config, mixture, None):.1f} |"
        )
    for offset_m in ((0.05, 0, 0), (0.10, 0, 0), (0, 0.10, 0), (0, 0, 0.10)):
        moved = dataclasses.replace(config, mouth_m=config.mouth_m + np.array(offset_m))
        rows.append(
            f"| config's mouth off by {offset_m} m | {chain(moved, scene['mixture'], 10.0):.1f}"
            f" | {chain(moved, scene['mixture'], None):.1f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the first scene")
    args = parser.parse_args(argv)
    systems = ("mic", "mic+NS", "DAS", "DAS+NS", "MVDR", "MVDR+NS")
    with tempfile.TemporaryDirectory() as tmp:
        arrays = _write_arrays(Path(tmp))
        print("SI-SDR dB / PESQ-WB (16 kHz, block 160, suppressor 25 dB); gain = MVDR+NS - mic+NS")
        print(
            f"| {'scene':<30} | "
            + " | ".join(f"{s:>12}" for s in systems)
            + " | SI-SDR gain | PESQ gain |"
        )
        print("|" + "---|" * (len(systems) + 3))
        gains = []
        for label, array, rt60_s, azimuths, sir_db in SCENES[: 1 if args.quick else None]:
            path = EXAMPLE if array is None else arrays[array]
            r = evaluate(path, rt60_s, azimuths, sir_db)
            gain = r["MVDR+NS"][0] - r["mic+NS"][0]
            gains.append(gain)
            cells = " | ".join(f"{r[s][0]:5.1f} / {r[s][1]:4.2f}" for s in systems)
            print(
                f"| {label:<30} | {cells} | {gain:+11.1f} | "
                f"{r['MVDR+NS'][1] - r['mic+NS'][1]:+9.2f} |"
            )
    print(
        f"SI-SDR gain of MVDR+NS over the best mic + NS: min {min(gains):+.1f} dB, "
        f"median {float(np.median(gains)):+.1f} dB over {len(gains)} scenes"
    )
    if not args.quick:
        print("\nRobustness, first scene, MVDR+NS SI-SDR (dB):")
        print("\n".join(robustness()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
