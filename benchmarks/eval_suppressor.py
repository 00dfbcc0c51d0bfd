"""Side-by-side evaluation of the headset noise suppressor against WebRTC NS, SpeexDSP and RNNoise.

Builds its own corpus (espeak-ng speech in English and Korean, mixed with the simulated
office's babble, HVAC, keyboard clicks, pink masking noise and white noise at 0, 5 and 10 dB
SNR), runs every system on the same mixtures at 16 kHz and scores:

- PESQ-WB (ITU-T P.862.2, ``pesq``), STOI (``pystoi``), SI-SDR (Le Roux et al. 2019);
- residual noise in speech pauses: output power over the pauses divided by the unprocessed
  noise's power over the same samples, in dB (pauses = 10 ms frames more than 50 dB below the
  loudest clean-speech frame, at least 50 ms from speech);
- compute per 10 ms of 16 kHz audio (wall time of the whole file / number of 10 ms frames);
- delay, measured by cross-correlation with the clean speech and compensated before scoring.

Peers: ``webrtc-noise-gain`` (noise suppression level 3, auto gain off, 10 ms int16 frames at
16 kHz), ``speexdsp-ns`` (10 ms frames at 16 kHz, its default suppression of -15 dB) and
``pyrnnoise`` (48 kHz only: the mixture is resampled 16 -> 48 kHz, processed, and resampled back;
the resampling is not counted in its compute). A peer that is not installed is skipped, with a
note. Variants of our suppressor run alongside: without the click detector, with the
near-talker (babble) model, and with the 5 ms hop (~10 ms latency).

Usage::

    python benchmarks/eval_suppressor.py [--quick] [--out benchmarks/results]

Writes ``eval_suppressor.json`` and ``eval_suppressor.png`` in ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from audio_engine.dsp.suppressor import NoiseSuppressor
from audio_engine.office import noise as office_noise
from audio_engine.office.speech import espeak, have_espeak, resample

SAMPLE_RATE = 16000
HOP_10MS = 160
SEED = 3

#: Utterances of the corpus: (language, espeak voice, pitch, sentences). None of them is a
#: sentence the tests or the babble use, so nothing is tuned on its own test material.
UTTERANCES = (
    (
        "en",
        "en-us",
        45,
        (
            "Your parking permit has been renewed until the end of March.",
            "Is there anything else I can help you with today?",
        ),
    ),
    (
        "ko",
        "ko",
        55,
        (
            "오늘 오후에 수도 공사가 있어서 물이 잠시 끊깁니다.",
            "자세한 내용은 구청 홈페이지에서 확인하실 수 있습니다.",
        ),
    ),
    (
        "en",
        "en-gb+f2",
        60,
        (
            "The recycling centre on Mill Road is closed for repairs this weekend.",
            "You can take large items to the depot by the station instead.",
        ),
    ),
    (
        "ko",
        "ko+m3",
        40,
        (
            "신청서는 이메일이나 팩스로 보내 주셔도 됩니다.",
            "접수되면 문자로 안내해 드리겠습니다.",
        ),
    ),
)

NOISES = ("babble", "hvac", "keyboard", "pink_masking", "white")
SNRS_DB = (0.0, 5.0, 10.0)

#: Active speech level of the headset talker, dBFS RMS (a typical headset level; ITU-T P.56
#: active level of -26 dBov is the usual reference).
SPEECH_LEVEL_DBFS = -26.0


# -- corpus ------------------------------------------------------------------------------------
def utterance(voice: str, pitch: int, sentences: tuple[str, ...]) -> np.ndarray:
    """Sentences with pauses between them (0.5 s lead, 0.7 s gaps, 0.5 s tail), mono float32."""
    fs = SAMPLE_RATE
    parts = [np.zeros(int(0.5 * fs), np.float32)]
    for s in sentences:
        parts.append(espeak(s, voice=voice, sample_rate=fs, pitch=pitch))
        parts.append(np.zeros(int(0.7 * fs), np.float32))
    parts[-1] = np.zeros(int(0.5 * fs), np.float32)
    x = np.concatenate(parts).astype(np.float64)
    frame = 256
    e = np.array([np.mean(x[i : i + frame] ** 2) for i in range(0, len(x) - frame, frame)])
    active = e[e > e.max() * 1e-4].mean()
    return (x * 10 ** (SPEECH_LEVEL_DBFS / 20) / np.sqrt(active)).astype(np.float32)


def noise_signal(kind: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """An office noise, RMS 1. ``pink_masking`` is the masking system's -5 dB/octave spectrum."""
    fs = SAMPLE_RATE
    if kind == "babble":
        return office_noise.babble(frames, rng, fs)
    if kind == "hvac":
        return office_noise.hvac(frames, rng, fs)
    if kind == "keyboard":
        return office_noise.keyboard(frames, rng, fs)
    if kind == "pink_masking":
        return office_noise.shaped(frames, rng, fs, -5.0)
    if kind == "white":
        return office_noise.white(frames, rng)
    raise ValueError(kind)


def build_corpus(quick: bool) -> list[dict]:
    """Every (utterance, noise, SNR) mixture: dicts with clean, noise (scaled) and metadata."""
    if not have_espeak():
        sys.exit("espeak-ng is needed for the corpus: apt-get install espeak-ng")
    rng = np.random.default_rng(SEED)
    utterances = UTTERANCES[:2] if quick else UTTERANCES
    corpus = []
    for u, (lang, voice, pitch, sentences) in enumerate(utterances):
        clean = utterance(voice, pitch, sentences)
        for kind in NOISES:
            raw = noise_signal(kind, len(clean), rng)
            for snr_db in SNRS_DB:
                noise = office_noise.mix_at_snr(clean, raw, snr_db)
                corpus.append(
                    {
                        "utterance": u,
                        "language": lang,
                        "noise": kind,
                        "snr_db": snr_db,
                        "clean": clean,
                        "noise_signal": noise,
                    }
                )
    return corpus


# -- systems -----------------------------------------------------------------------------------
def ours(**kwargs):
    """Our suppressor, streamed in 10 ms blocks through the processor API."""

    def run(x: np.ndarray) -> np.ndarray:
        ns = NoiseSuppressor(SAMPLE_RATE, HOP_10MS, 1, **kwargs)
        block = np.zeros((HOP_10MS, 1), np.float32)
        out = np.zeros((HOP_10MS, 1), np.float32)
        y = np.zeros(len(x), np.float32)
        for i in range(0, len(x) - HOP_10MS + 1, HOP_10MS):
            block[:, 0] = x[i : i + HOP_10MS]
            ns.process(block, out)
            y[i : i + HOP_10MS] = out[:, 0]
        return y

    return run


def webrtc():
    from webrtc_noise_gain import AudioProcessor

    def run(x: np.ndarray) -> np.ndarray:
        ap = AudioProcessor(0, 3)  # auto gain off, noise suppression level 3 (strongest)
        pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
        y = np.zeros(len(x), np.float32)
        for i in range(0, len(x) - HOP_10MS + 1, HOP_10MS):
            chunk = ap.Process10ms(pcm[i : i + HOP_10MS].tobytes())
            y[i : i + HOP_10MS] = np.frombuffer(chunk.audio, np.int16) / 32768.0
        return y

    return run


def speex():
    from speexdsp_ns import NoiseSuppression

    def run(x: np.ndarray) -> np.ndarray:
        ns = NoiseSuppression.create(HOP_10MS, SAMPLE_RATE)
        pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
        y = np.zeros(len(x), np.float32)
        for i in range(0, len(x) - HOP_10MS + 1, HOP_10MS):
            out = ns.process(pcm[i : i + HOP_10MS].tobytes())
            y[i : i + HOP_10MS] = np.frombuffer(out, np.int16) / 32768.0
        return y

    return run


def rnnoise():
    import ctypes

    from pyrnnoise import rnnoise as rn

    frame = rn.FRAME_SIZE  # 480 samples = 10 ms at 48 kHz

    def run(x: np.ndarray) -> np.ndarray:
        x48 = resample(x, SAMPLE_RATE, 48000) * 32768.0
        state = rn.create()
        buf = np.zeros(frame, np.float32)
        ptr = buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        y48 = np.zeros(len(x48), np.float32)
        t0 = time.perf_counter()
        for i in range(0, len(x48) - frame + 1, frame):
            buf[:] = x48[i : i + frame]
            rn.lib.rnnoise_process_frame(state, ptr, ptr)
            y48[i : i + frame] = buf
        run.compute_s = time.perf_counter() - t0
        rn.destroy(state)
        return resample(y48 / 32768.0, 48000, SAMPLE_RATE)[: len(x)]

    return run


def systems() -> tuple[dict, list[str]]:
    """Name -> runner, and notes on peers that could not be loaded."""
    found = {
        "ours": ours(),
        "ours_no_click": ours(transient_detector=False),
        "ours_near_talker": ours(near_talker=True),
        "ours_hop5ms": ours(hop_ms=5.0),
    }
    notes = []
    for name, factory in (("webrtc_ns3", webrtc), ("speexdsp", speex), ("rnnoise", rnnoise)):
        try:
            found[name] = factory()
        except ImportError as exc:
            notes.append(f"{name} skipped: {exc}")
    return found, notes


# -- metrics -----------------------------------------------------------------------------------
def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019)."""
    r = reference.astype(np.float64) - reference.mean()
    e = estimate.astype(np.float64) - estimate.mean()
    target = (np.dot(e, r) / max(np.dot(r, r), 1e-30)) * r
    return float(
        10 * np.log10(max(np.dot(target, target), 1e-30) / max(np.sum((e - target) ** 2), 1e-30))
    )


def measure_delay(reference: np.ndarray, output: np.ndarray, max_lag: int = 1600) -> int:
    """Lag (0..max_lag samples) maximising the cross-correlation of output with reference."""
    n = len(reference)
    spec = np.fft.rfft(output, 2 * n) * np.conj(np.fft.rfft(reference, 2 * n))
    xc = np.fft.irfft(spec, 2 * n)[: max_lag + 1]
    return int(np.argmax(xc))


def pause_mask(clean: np.ndarray) -> np.ndarray:
    """True on samples in speech pauses: 10 ms frames > 50 dB below the loudest, 50 ms from speech."""
    f = HOP_10MS
    frames = len(clean) // f
    e = np.array(
        [np.mean(clean[i * f : (i + 1) * f].astype(np.float64) ** 2) for i in range(frames)]
    )
    speech = e > e.max() * 1e-5
    guard = 5  # frames = 50 ms
    near = np.convolve(speech.astype(float), np.ones(2 * guard + 1), "same") > 0
    mask = np.zeros(len(clean), bool)
    mask[: frames * f] = np.repeat(~near, f)
    return mask


def score(clean, noise, output, pesq_fn, stoi_fn) -> dict:
    """Metrics of one aligned output."""
    mask = pause_mask(clean)
    res = float(
        10
        * np.log10(
            np.sum(output[mask].astype(np.float64) ** 2)
            / np.sum(noise[mask].astype(np.float64) ** 2)
        )
    )
    try:
        p = float(pesq_fn(SAMPLE_RATE, clean, output, "wb"))
    except Exception:  # pesq raises on outputs it finds no speech in
        p = float("nan")
    return {
        "pesq_wb": p,
        "stoi": float(stoi_fn(clean, output, SAMPLE_RATE, extended=False)),
        "si_sdr_db": si_sdr_db(clean, output),
        "residual_pause_db": res,
    }


# -- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 utterances instead of 4 (~3 min)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for JSON and PNG")
    parser.add_argument("--only", nargs="*", help="run only these systems (and the noisy input)")
    args = parser.parse_args(argv)

    from pesq import pesq
    from pystoi import stoi

    corpus = build_corpus(args.quick)
    runners, notes = systems()
    if args.only:
        runners = {k: v for k, v in runners.items() if k in args.only}
    for n in notes:
        print(n)

    # Delay of each system, measured once on a 10 dB mixture by cross-correlation.
    probe = next(m for m in corpus if m["snr_db"] == 10.0 and m["noise"] == "pink_masking")
    probe_mix = probe["clean"] + probe["noise_signal"]
    delays = {"noisy": 0}
    for name, run in runners.items():
        delays[name] = measure_delay(probe["clean"], run(probe_mix))
    print("measured delay (samples at 16 kHz):", delays)

    rows = []
    for m in corpus:
        clean, noise = m["clean"], m["noise_signal"]
        mix = (clean + noise).astype(np.float32)
        outputs = {"noisy": (mix, 0.0)}
        for name, run in runners.items():
            t0 = time.perf_counter()
            y = run(mix)
            elapsed = getattr(run, "compute_s", None) or (time.perf_counter() - t0)
            if hasattr(run, "compute_s"):
                del run.compute_s
            outputs[name] = (y, elapsed)
        for name, (y, elapsed) in outputs.items():
            d = delays[name]
            n = len(clean) - d
            aligned = np.zeros(len(clean), np.float32)
            aligned[:n] = y[d:]
            row = {k: m[k] for k in ("utterance", "language", "noise", "snr_db")}
            row["system"] = name
            row.update(score(clean, noise, aligned, pesq, stoi))
            row["compute_us_per_10ms"] = 1e6 * elapsed / (len(clean) / HOP_10MS)
            rows.append(row)
        print(f"  {m['language']} {m['noise']:<13} {m['snr_db']:4.0f} dB done", flush=True)

    names = list(outputs)
    summary = summarise(rows, names, delays)
    print_table(summary, names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "schema": "audio_engine.eval_suppressor/1",
        "sample_rate": SAMPLE_RATE,
        "quick": args.quick,
        "notes": notes
        + ["rnnoise runs at 48 kHz: input resampled 16->48 kHz and output back (not timed)"],
        "delays_samples": delays,
        "summary": summary,
        "rows": rows,
    }
    (out / "eval_suppressor.json").write_text(json.dumps(payload, indent=1) + "\n")
    plot(summary, names, out / "eval_suppressor.png")
    print(f"wrote {out / 'eval_suppressor.json'} and {out / 'eval_suppressor.png'}")
    return 0


METRICS = ("pesq_wb", "stoi", "si_sdr_db", "residual_pause_db", "compute_us_per_10ms")


def summarise(rows: list[dict], names: list[str], delays: dict) -> dict:
    """Mean of each metric per system overall, per noise and per SNR."""
    summary = {}
    for name in names:
        mine = [r for r in rows if r["system"] == name]
        entry = {"delay_ms": 1e3 * delays[name] / SAMPLE_RATE}
        for metric in METRICS:
            entry[metric] = float(np.nanmean([r[metric] for r in mine]))
        for group in ("noise", "snr_db"):
            for value in sorted({r[group] for r in mine}, key=str):
                sub = [r for r in mine if r[group] == value]
                entry[f"{group}={value}"] = {
                    metric: float(np.nanmean([r[metric] for r in sub])) for metric in METRICS[:4]
                }
        summary[name] = entry
    return summary


def print_table(summary: dict, names: list[str]) -> None:
    print()
    print(
        f"{'system':<22}{'PESQ-WB':>8}{'STOI':>7}{'SI-SDR':>8}{'pause dB':>9}{'µs/10ms':>9}{'delay ms':>9}"
    )
    for name in names:
        s = summary[name]
        print(
            f"{name:<22}{s['pesq_wb']:8.3f}{s['stoi']:7.3f}{s['si_sdr_db']:8.2f}"
            f"{s['residual_pause_db']:9.1f}{s['compute_us_per_10ms']:9.1f}{s['delay_ms']:9.2f}"
        )
    noises = sorted({k for n in names for k in summary[n] if k.startswith("noise=")})
    print("\nPESQ-WB / SI-SDR per noise")
    print(f"{'system':<22}" + "".join(f"{k[6:]:>18}" for k in noises))
    for name in names:
        cells = "".join(
            f"{summary[name][k]['pesq_wb']:9.2f}{summary[name][k]['si_sdr_db']:9.2f}"
            for k in noises
        )
        print(f"{name:<22}{cells}")


def plot(summary: dict, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noises = sorted({k for n in names for k in summary[n] if k.startswith("noise=")})
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.5))
    width = 0.8 / len(names)
    for ax, metric, label in zip(
        axes,
        METRICS[:4],
        ("PESQ-WB", "STOI", "SI-SDR (dB)", "residual noise in pauses (dB)"),
        strict=True,
    ):
        for i, name in enumerate(names):
            vals = [summary[name][k][metric] for k in noises]
            ax.bar(np.arange(len(noises)) + i * width, vals, width, label=name)
        ax.set_xticks(np.arange(len(noises)) + 0.4 - width / 2)
        ax.set_xticklabels([k[6:] for k in noises], rotation=30)
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
