"""Simulated office days: fixed vs level-only vs speech-adaptive spectral masking, side by side.

Runs :func:`audio_engine.spectral_day.simulate_day` on the example site for each seed, prints the
table (per period: mean masking dBA at the listener, mean and 95th-percentile SII while the
neighbour talks, % of talking time at or under the SII target; per strategy: ceiling crossings
and the largest band change in any 10 s window against the audible-step threshold), finds the
fixed level that would give the spectral law's privacy, and writes a PNG and a JSON.

    python benchmarks/eval_spectral_masking.py --out /tmp/spectral [--seeds 0 1] [--step-s 2]
    python benchmarks/eval_spectral_masking.py --out /tmp/spectral_err3 --seeds 0 \
        --speech-path-error-db 3     # the law under-reads the talkers by 3 dB

Not a test: a day takes about 30-60 s on a shared core.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from audio_engine.dsp.spectral_masking import AUDIBLE_STEP_DB, AUDIBLE_STEP_WINDOW_S
from audio_engine.pipelines import EXAMPLE_SITE
from audio_engine.site import load_site_config
from audio_engine.spectral_day import fixed_level_for_privacy, plot_day, simulate_day, summarise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/spectral_masking", help="folder for PNG and JSON")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--step-s", type=float, default=2.0)
    parser.add_argument(
        "--speech-path-error-db",
        type=float,
        default=0.0,
        help="the real talker-to-mic path is this much quieter than the law assumes (robustness)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    site = load_site_config(EXAMPLE_SITE)
    report = {
        "site": site.name,
        "step_s": args.step_s,
        "speech_path_error_db": args.speech_path_error_db,
        "days": [],
    }
    for seed in args.seeds:
        started = time.perf_counter()
        day = simulate_day(
            site, step_s=args.step_s, seed=seed, speech_path_error_db=args.speech_path_error_db
        )
        elapsed = time.perf_counter() - started
        simulated_s = (day["hours"][-1] - day["hours"][0]) * 3600.0 + args.step_s
        table = summarise(day)
        whole = {name: t["periods"]["whole day"] for name, t in table.items()}
        same_privacy = fixed_level_for_privacy(day, whole["spectral"]["percent_private"])
        fixed_mean = whole["fixed"]["mean_level_dba"]
        equivalent = None if same_privacy is None else fixed_mean + same_privacy
        print(
            f"\nseed {seed}: {simulated_s / 3600:.1f} h simulated in {elapsed:.1f} s "
            f"({simulated_s / elapsed:.0f}x real time), SII target {day['settings'].sii_target:.2f}"
        )
        header = f"{'strategy':<11} {'period':<20} {'dBA':>6} {'SII mean':>9} {'SII p95':>8} {'private %':>9}"
        print(header)
        print("-" * len(header))
        for name, t in table.items():
            for period, row in t["periods"].items():
                print(
                    f"{name:<11} {period:<20} {row['mean_level_dba']:>6.2f} {row['mean_sii']:>9.3f} "
                    f"{row['p95_sii']:>8.3f} {row['percent_private']:>9.1f}"
                )
            print(
                f"{'':<11} ceiling crossings {t['ceiling_crossings']}, max level "
                f"{t['max_level_dba']:.2f} dBA, largest band change in {AUDIBLE_STEP_WINDOW_S:g} s "
                f"{t['max_band_change_10s_db']:.3f} dB (audible step >= {AUDIBLE_STEP_DB:g} dB: "
                f"{'YES' if t['audible_steps'] else 'none'})"
            )
        saving = None if equivalent is None else equivalent - whole["spectral"]["mean_level_dba"]
        print(
            f"fixed masking needs +{same_privacy} dB (mean {equivalent} dBA) for the spectral law's "
            f"{whole['spectral']['percent_private']:.1f} % private; spectral plays "
            f"{whole['spectral']['mean_level_dba']:.2f} dBA: "
            + ("n/a" if saving is None else f"{saving:.2f} dBA less at the same privacy")
        )
        png = out / f"spectral_day_seed{seed}.png"
        plot_day(day, png)
        print(f"wrote {png}")
        report["days"].append(
            {
                "seed": seed,
                "elapsed_s": round(elapsed, 2),
                "simulated_s": simulated_s,
                "table": table,
                "fixed_offset_for_same_privacy_db": same_privacy,
                "fixed_equivalent_mean_dba": equivalent,
                "spectral_saving_at_same_privacy_dba": None if saving is None else round(saving, 2),
                "png": str(png),
            }
        )
    savings = [d["spectral_saving_at_same_privacy_dba"] for d in report["days"]]
    if all(s is not None for s in savings):
        report["mean_saving_dba"] = round(float(np.mean(savings)), 2)
        print(
            f"\nmean saving at the same privacy over {len(savings)} days: {report['mean_saving_dba']:.2f} dBA"
        )
    path = out / "spectral_masking.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
