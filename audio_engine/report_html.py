"""The calibration report: one self-contained HTML page with plots, plus the same data as JSON.

For each zone it says plainly PASS or FAIL (and why), and shows:

- target vs measured one-third-octave band levels at the listener (dB SPL),
- the deviation per band with the ±1 dB tolerance drawn in,
- LAeq per measurement position (masking alone and masking + background) and the spatial
  spread,
- the EQ that was fitted, the level offset, the iterations it took,
- the Speech Intelligibility Index and privacy class per position for the stated talker.

Plots are matplotlib PNGs embedded as base64 ``data:`` URIs, so the HTML file can be mailed or
filed on its own. Not real-time; imports matplotlib only when called.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from pathlib import Path

import numpy as np

SCHEMA = "audio_engine.calibration_report/1"


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _zone_figures(zone: dict, tolerance_db: float) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = np.array(zone["bands_hz"])
    x = np.arange(len(bands))
    labels = [f"{f:g}" if f < 1000 else f"{f / 1000:g}k" for f in bands]

    def nan(values):
        return np.array([np.nan if v is None else v for v in values], dtype=float)

    figures = []
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(x, nan(zone["target_db"]), "k--", label="target")
    ax.fill_between(
        x,
        nan(zone["target_db"]) - tolerance_db,
        nan(zone["target_db"]) + tolerance_db,
        color="0.85",
        label=f"±{tolerance_db:g} dB",
    )
    ax.plot(x, nan(zone["predicted_db"]), "o-", color="tab:blue", label="measured (masking)")
    ax.set_xticks(x, labels, rotation=60, fontsize=7)
    ax.set_xlabel("one-third-octave band (Hz)")
    ax.set_ylabel("band level (dB SPL)")
    ax.set_title(f"{zone['name']}: target vs measured at {zone['target_dba']:g} dBA")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    figures.append(("Target vs measured band levels", _png(fig)))

    fig, ax = plt.subplots(figsize=(8, 2.6))
    deviation = nan(zone["deviation_db"])
    colours = [
        "tab:green" if abs(d) <= tolerance_db else "tab:red"
        for d in np.nan_to_num(deviation, nan=99)
    ]
    ax.bar(x, np.nan_to_num(deviation), color=colours)
    for k in np.flatnonzero(~np.isfinite(deviation)):
        ax.text(k, 0, "n/m", ha="center", va="bottom", fontsize=7, color="tab:red")
    ax.axhspan(-tolerance_db, tolerance_db, color="0.9", zorder=0)
    ax.axhline(tolerance_db, color="k", lw=0.8, ls="--")
    ax.axhline(-tolerance_db, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, labels, rotation=60, fontsize=7)
    ax.set_ylabel("deviation (dB)")
    ax.set_title("deviation per band (n/m = not measurable above the background)")
    ax.grid(alpha=0.3)
    figures.append(("Deviation per band", _png(fig)))

    fig, ax = plt.subplots(figsize=(5, 2.6))
    masking = nan(zone["laeq_masking_dba_per_position"])
    total = nan(zone["laeq_total_dba_per_position"])
    positions = np.arange(1, len(masking) + 1)
    ax.bar(positions - 0.2, masking, 0.4, label="masking alone")
    ax.bar(positions + 0.2, total, 0.4, label="masking + background")
    ax.axhline(zone["target_dba"], color="k", ls="--", label="target")
    ax.set_xticks(positions, [f"position {p}" for p in positions])
    ax.set_ylabel("LAeq (dBA)")
    low = np.nanmin(np.concatenate([masking, total, [zone["target_dba"]]]))
    ax.set_ylim(low - 6, None)
    ax.set_title(f"LAeq per position (spatial spread {zone['spatial_spread_db']:.1f} dB)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    figures.append(("LAeq per position", _png(fig)))
    return figures


def _fmt(value, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/m"
    return f"{value:.{digits}f}{unit}"


def build_report(results: list, meta: dict, tolerance_db: float = 1.0) -> dict:
    """The report as a JSON-ready dict (``results`` are :class:`~audio_engine.autocal.ZoneResult`
    or their ``as_dict()``)."""
    zones = [r if isinstance(r, dict) else r.as_dict() for r in results]
    return {
        "schema": SCHEMA,
        "passed": all(z["passed"] for z in zones) and bool(zones),
        "tolerance_db": tolerance_db,
        **meta,
        "zones": zones,
    }


def render_html(report: dict) -> str:
    """The self-contained HTML page of a report dict."""
    e = html.escape
    tol = report["tolerance_db"]
    overall = "PASS" if report["passed"] else "FAIL"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Masking calibration: {e(str(report.get('site', '')))}</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;"
        "font-size:90%}th{background:#eee}.PASS{color:#fff;background:#2a7d2a;padding:2px 10px}"
        ".FAIL{color:#fff;background:#b22;padding:2px 10px}img{max-width:100%}</style></head><body>",
        f"<h1>Masking calibration report — <span class='{overall}'>{overall}</span></h1>",
        "<table>",
    ]
    for key, label in (
        ("site", "Site"),
        ("created", "Date (UTC)"),
        ("measured_by", "Measured by"),
        ("method", "Method"),
        ("microphone", "Microphone"),
        ("calibration_file", "Calibration file"),
        ("talker", "Talker for SII"),
    ):
        if key in report:
            value = report[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}: {v}" for k, v in value.items())
            parts.append(f"<tr><th>{label}</th><td>{e(str(value))}</td></tr>")
    parts.append("</table>")
    parts.append(
        "<table><tr><th>Zone</th><th>Result</th><th>Target dBA</th><th>LAeq per position "
        "(masking)</th><th>Spread dB</th><th>Iterations</th><th>Worst band dB</th>"
        "<th>SII (privacy)</th></tr>"
    )
    for z in report["zones"]:
        verdict = "PASS" if z["passed"] else "FAIL"
        worst = max((abs(d) for d in z["deviation_db"] if d is not None), default=float("nan"))
        laeq = ", ".join(_fmt(v) for v in z["laeq_masking_dba_per_position"])
        sii = ", ".join(f"{p['sii']:.2f} ({p['privacy_class']})" for p in z["privacy_per_position"])
        parts.append(
            f"<tr><td>{e(z['name'])}</td><td><span class='{verdict}'>{verdict}</span></td>"
            f"<td>{z['target_dba']:g}</td><td>{laeq}</td><td>{z['spatial_spread_db']:.1f}</td>"
            f"<td>{z['iterations']}</td><td>{_fmt(worst, 2)}</td><td>{e(sii)}</td></tr>"
        )
    parts.append("</table>")
    for z in report["zones"]:
        verdict = "PASS" if z["passed"] else "FAIL"
        parts.append(f"<h2>{e(z['name'])} — <span class='{verdict}'>{verdict}</span></h2>")
        if z["reasons"]:
            parts.append("<ul>" + "".join(f"<li>{e(r)}</li>" for r in z["reasons"]) + "</ul>")
        else:
            parts.append(
                f"<p>Every band within ±{tol:g} dB of the target; level set to "
                f"{z['target_dba']:g} dBA (offset {z['spl_offset_db']:.1f} dB).</p>"
            )
        for title, uri in _zone_figures(z, tol):
            parts.append(f"<h3>{e(title)}</h3><img alt='{e(title)}' src='{uri}'>")
        parts.append("<h3>Bands</h3><table><tr><th>Hz</th><th>target dB</th><th>measured dB</th>"
                     "<th>deviation dB</th><th>EQ dB</th></tr>")  # fmt: skip
        for f, t, m, d, q in zip(
            z["bands_hz"],
            z["target_db"],
            z["predicted_db"],
            z["deviation_db"],
            z["eq_db"],
            strict=True,
        ):
            parts.append(
                f"<tr><td>{f:g}</td><td>{_fmt(t)}</td><td>{_fmt(m)}</td><td>{_fmt(d)}</td>"
                f"<td>{_fmt(q)}</td></tr>"
            )
        parts.append("</table>")
        parts.append("<h3>Positions</h3><table><tr><th>position</th><th>masking LAeq</th>"
                     "<th>masking + background LAeq</th><th>background LAeq</th><th>SII</th>"
                     "<th>privacy index</th><th>privacy class</th></tr>")  # fmt: skip
        for i, p in enumerate(z["privacy_per_position"]):
            parts.append(
                f"<tr><td>{i + 1}</td><td>{_fmt(z['laeq_masking_dba_per_position'][i])}</td>"
                f"<td>{_fmt(z['laeq_total_dba_per_position'][i])}</td>"
                f"<td>{_fmt(z['background_dba_per_position'][i])}</td><td>{p['sii']:.3f}</td>"
                f"<td>{p['privacy_index']:.0f}</td><td>{e(p['privacy_class'])}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        "<p><small>Band levels: IEC 61260-1 class 1 one-third-octave filters; A-weighting: IEC "
        "61672-1 class 1. SII: ANSI S3.5-1997 one-third-octave procedure, normal vocal effort, "
        "used in place of the ASTM E1130 Articulation Index for the privacy class (the 0.30 "
        "bound of 'marginal' is not confirmed from the standard). Measured band levels are the "
        "power mean over positions with the background subtracted, scaled to the target level."
        "</small></p></body></html>"
    )
    return "\n".join(parts)


def write_report(
    directory: str | os.PathLike, results: list, meta: dict, tolerance_db: float = 1.0
) -> tuple[Path, Path]:
    """Write ``calibration_report.html`` and ``calibration_report.json`` into ``directory``.

    Returns
    -------
    (html_path, json_path)
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(results, meta, tolerance_db)
    json_path = out / "calibration_report.json"
    html_path = out / "calibration_report.html"
    json_path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return html_path, json_path
