"""``audio-engine hearing-report``: a day's or a week's noise dose and limiting events."""

from __future__ import annotations

import argparse

NAME = "hearing-report"
ORDER = 60
HELP = "summarise an agent's daily noise dose and limiting events (text and an HTML page)"
DESCRIPTION = """\
Summarise the hearing-protection log of the receive path for health-and-safety teams: per day
the A-weighted exposure LEX,8h (EU directive 2003/10/EC, action values 80 and 85 dB(A)) and the
dose in % of the configured limit, and every limiting event (hard limit, anti-startle, loud
caller, dose warnings) with its time, peak level at the ear (dB SPL) and duration.

Prints the summary and writes an HTML page with a plot (dose through the day, event peaks).
The log lives in $AUDIO_ENGINE_HEARING_DIR (default ~/.local/state/audio_engine/hearing), one
file per day, written by `audio-engine headset --receive`.

Levels are only as right as the headset profile they were measured with; the packaged example
profiles are typical values, not measurements (calibration/headsets/README.md).

examples:
  audio-engine hearing-report
  audio-engine hearing-report --day 2026-11-27 --week --html week.html
  audio-engine hearing-report --dir /srv/hearing/agent17 --events 50
"""

#: Exposure action values, dB(A), 2003/10/EC art. 3 (drawn on the plot).
_ACTION_VALUES_DBA = (80.0, 85.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--day", metavar="YYYY-MM-DD", help="the day to report, or the last day of --week (today)"
    )
    parser.add_argument("--week", action="store_true", help="report the seven days ending on --day")
    parser.add_argument("--dir", metavar="DIR", help="log folder (default: see above)")
    parser.add_argument(
        "--html",
        metavar="PATH",
        help="HTML page to write (default: ./hearing-report-FIRST[_LAST].html)",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=20,
        metavar="N",
        help="list at most N events per day, loudest first (default 20; 0..10000)",
    )


def _parse_day(text: str | None):
    import datetime as dt

    from audio_engine.errors import ConfigError

    if text is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--day={text!r} is not a date YYYY-MM-DD") from None


def _fmt(value, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def render_text(summaries: list[dict], max_events: int) -> str:
    """The report as plain text."""
    lines = []
    first, last = summaries[0]["day"], summaries[-1]["day"]
    span = first if first == last else f"{first} .. {last}"
    lines.append(f"Hearing protection report — {span}")
    lines.append(
        "  day         LEX,8h dB(A)  dose %   events  limit startle loud  peak dB SPL  limiting s"
    )
    for s in summaries:
        k = s["by_kind"]
        lines.append(
            f"  {s['day']}  {_fmt(s['lex_8h_dba'], '12.1f'):>12}  {s['dose_percent']:7.1f}  "
            f"{s['events']:6d}  {k.get('limit', 0):5d} {k.get('startle', 0):7d} "
            f"{k.get('loud_caller', 0):4d}  {_fmt(s['max_peak_db_spl'], '11.1f'):>11}  "
            f"{s['limiting_s']:10.1f}"
        )
    for s in summaries:
        lex = s["lex_8h_dba"]
        if lex is not None and lex >= _ACTION_VALUES_DBA[0]:
            which = "upper" if lex >= _ACTION_VALUES_DBA[1] else "lower"
            lines.append(
                f"  ! {s['day']}: LEX,8h {lex:.1f} dB(A) reaches the {which} exposure action value "
                f"({_ACTION_VALUES_DBA[1 if which == 'upper' else 0]:.0f} dB(A), 2003/10/EC art. 3)"
            )
        warnings = [e for e in s["event_list"] if e.get("kind") in ("dose_warning", "dose_limit")]
        for e in warnings:
            lines.append(
                f"  ! {e.get('time')}: {e.get('kind')} at {e.get('peak_db_spl', 0):.0f} % dose"
            )
    for s in summaries:
        listed = [
            e for e in s["event_list"] if e.get("kind") in ("limit", "startle", "loud_caller")
        ]
        if not listed or max_events == 0:
            continue
        listed.sort(key=lambda e: -float(e.get("peak_db_spl", 0.0)))
        lines.append(
            f"  events {s['day']} (loudest {min(max_events, len(listed))} of {len(listed)}):"
        )
        for e in listed[:max_events]:
            lines.append(
                f"    {e.get('time', '?'):<29} {e.get('kind', '?'):<12} peak "
                f"{float(e.get('peak_db_spl', 0.0)):6.1f} dB SPL  {float(e.get('duration_s', 0.0)):7.2f} s"
                f"  -{float(e.get('max_reduction_db', 0.0)):.1f} dB"
            )
    return "\n".join(lines)


def render_plot_png(summaries: list[dict]) -> bytes:
    """Dose through the day(s) and event peaks, as a PNG."""
    import datetime as dt
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_dose, ax_events) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    colours = {"limit": "tab:red", "startle": "tab:orange", "loud_caller": "tab:blue"}
    for s in summaries:
        pts = [(dt.datetime.fromisoformat(t), d) for t, d in s["dose_points"] if t]
        if pts:
            ax_dose.plot([p[0] for p in pts], [p[1] for p in pts], color="tab:green")
        for e in s["event_list"]:
            kind = e.get("kind")
            if kind in colours and e.get("time"):
                ax_events.scatter(
                    dt.datetime.fromisoformat(e["time"]),
                    float(e.get("peak_db_spl", 0.0)),
                    color=colours[kind],
                    s=14,
                )
    limit = summaries[-1]["dose_limit_dba"]
    for value in _ACTION_VALUES_DBA:
        ax_dose.axhline(100.0 * 10.0 ** ((value - limit) / 10.0), ls="--", color="grey", lw=0.8)
        ax_dose.annotate(
            f"{value:.0f} dB(A)",
            (0.0, 100.0 * 10.0 ** ((value - limit) / 10.0)),
            xycoords=("axes fraction", "data"),
            fontsize=8,
            color="grey",
        )
    ax_dose.set_ylabel(f"dose, % of {limit:.0f} dB(A) x 8 h")
    ax_dose.set_title("Daily noise dose at the ear (A-weighted, cumulative per day)")
    for kind, colour in colours.items():
        ax_events.scatter([], [], color=colour, s=14, label=kind)
    ax_events.axhline(102.0, ls="--", color="grey", lw=0.8)
    ax_events.set_ylabel("peak at the ear, dB SPL (input)")
    ax_events.set_title("Limiting events (input peak before protection; grey: G616 102 dB SPL)")
    ax_events.legend(loc="lower right", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def render_html(summaries: list[dict], text: str, png: bytes) -> str:
    """A self-contained HTML page: the text summary and the plot inline."""
    import base64
    import html

    first, last = summaries[0]["day"], summaries[-1]["day"]
    title = f"Hearing protection report {first}" + ("" if first == last else f" – {last}")
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{font-size:13px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<img alt='dose and events plot' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<pre>{html.escape(text)}</pre>"
        "<p>LEX,8h per EU directive 2003/10/EC (action values 80 and 85 dB(A)); peak levels in dB "
        "SPL at the ear through the headset profile named in each session record.</p>"
        "</body></html>\n"
    )


def run(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from audio_engine.errors import ConfigError
    from audio_engine.hearing_log import default_log_dir, iter_days, summarise_day

    last = _parse_day(args.day)
    first = last - dt.timedelta(days=6) if args.week else last
    if not 0 <= args.events <= 10000:
        raise ConfigError(f"--events={args.events!r} is not in 0..10000")
    directory = Path(args.dir) if args.dir else default_log_dir()
    if not directory.is_dir():
        raise ConfigError(f"--dir={str(directory)!r} is not a folder with hearing logs")
    summaries = [summarise_day(day, recs) for day, recs in iter_days(directory, first, last)]
    text = render_text(summaries, args.events)
    print(text)
    html_path = Path(
        args.html
        or f"hearing-report-{first.isoformat()}"
        + ("" if first == last else f"_{last.isoformat()}")
        + ".html"
    )
    html_path.write_text(render_html(summaries, text, render_plot_png(summaries)))
    print(f"HTML report: {html_path}")
    return 0
