"""`audio-engine bench` and audio_engine.bench: the CLI, the JSON schema, the plot, the click
locator and the peer comparison's bookkeeping. No assertion here depends on wall-clock time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audio_engine import bench
from audio_engine.cli import main
from audio_engine.dsp.base import Delay, Gain
from audio_engine.engine import run_array
from audio_engine.errors import ConfigError
from audio_engine.pipeline import Pipeline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

RATE = 16000
BLOCK = 160
DELAY_SAMPLES = 48


def simple_builders(rate: int = RATE, block: int = BLOCK, zones: int = 4):
    """Pipelines of the base stages, with a known algorithmic latency, for the framework."""
    return {
        "headset": lambda: Pipeline(
            [
                Gain(rate, block, 1, gain_db=-6.0),
                Delay(rate, block, 1, delay_samples=DELAY_SAMPLES),
            ],
            name="headset",
        ),
        "masking": lambda: Pipeline([Gain(rate, block, zones, gain_db=-20.0)], name="masking"),
    }


# -- the command line -------------------------------------------------------------------------


def test_help_names_every_flag_the_issue_asks_for(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--seconds",
        "--rate",
        "--block",
        "--zones",
        "--json",
        "--plot",
        "--compare",
        "--device",
        "--roundtrip",
        "audio_engine.bench/1",
    ):
        assert flag in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--rate", "44"],
            "--rate=44 is not supported; allowed: 8000, 16000, 24000, 32000, 44100, 48000 Hz",
        ),
        (
            ["--rate", "96000"],
            "--rate=96000 is not supported; allowed: 8000, 16000, 24000, 32000, 44100, 48000 Hz",
        ),
        (["--block", "0"], "--block=0 is not an integer in 1..65536"),
        (["--block", "65537"], "--block=65537 is not an integer in 1..65536"),
        (["--zones", "0"], "--zones=0 is not an integer in 1..64"),
        (["--zones", "65"], "--zones=65 is not an integer in 1..64"),
        (["--channels", "0"], "--channels=0 is not an integer in 1..64"),
        (["--seconds", "0"], "--seconds=0.0 is not in 0.1..86400"),
        (["--seconds", "nan"], "--seconds=nan is not in 0.1..86400"),
        (["--roundtrip"], "--roundtrip and --input-device need --device NAME"),
    ],
)
def test_bad_settings_are_one_line_errors(argv, message, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"audio-engine bench: error: {message}"


def test_check_settings_rejects_non_integers():
    with pytest.raises(ConfigError, match=r"^--block=1\.5 is not an integer in 1\.\.65536$"):
        bench.check_settings(1.0, 16000, 1.5, 1)
    with pytest.raises(ConfigError, match=r"^--zones=True is not an integer in 1\.\.64$"):
        bench.check_settings(1.0, 16000, 160, True)


def test_one_second_run_writes_the_documented_json_and_a_png(tmp_path, capsys):
    json_path, plot_path = tmp_path / "out" / "bench.json", tmp_path / "out" / "bench.png"
    status = main(
        [
            "bench",
            "--seconds",
            "1",
            "--rate",
            "16000",
            "--block",
            "160",
            "--zones",
            "2",
            "--json",
            str(json_path),
            "--plot",
            str(plot_path),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "Latency report — headset" in out and "Latency report — masking" in out
    document = json.loads(json_path.read_text())
    assert document["schema"] == bench.SCHEMA
    assert (document["sample_rate"], document["block_size"], document["zones"]) == (16000, 160, 2)
    assert {"python", "numpy", "numba", "cpu_count"} <= set(document["machine"])
    for name in ("headset", "masking"):
        entry = document[name]
        assert set(bench.PIPELINE_KEYS) <= set(entry)
        assert entry["blocks"] == 100  # 1 s of 10 ms blocks
        assert 0 < entry["p50_us"] <= entry["p95_us"] <= entry["p99_us"] <= entry["p999_us"]
        assert entry["p999_us"] <= entry["max_us"]
        assert entry["deadline_us"] == pytest.approx(10_000.0)
        stage_ms = sum(s["algorithmic_latency_ms"] for s in entry["stages"])
        assert entry["algorithmic_latency_ms"] == pytest.approx(stage_ms)
    assert document["masking"]["pipeline"] == "masking"
    assert plot_path.read_bytes()[:8] == PNG_SIGNATURE


# -- the framework, on base stages --------------------------------------------------------------


def test_reports_carry_the_schema_keys_and_the_known_latency(tmp_path):
    pipelines, reports = bench.run_pipelines(
        ("headset", "masking"), 0.5, RATE, BLOCK, 4, builders=simple_builders()
    )
    document = bench.bench_document(reports, 0.5, 4, 1)
    path = tmp_path / "bench.json"
    bench.write_json(path, document)
    loaded = json.loads(path.read_text())
    assert loaded["schema"] == bench.SCHEMA
    assert (loaded["sample_rate"], loaded["block_size"]) == (RATE, BLOCK)
    for name in ("headset", "masking"):
        assert set(bench.PIPELINE_KEYS) <= set(loaded[name])
        assert loaded[name]["blocks"] == 50
    # Gain (0) + Delay (48 samples at 16 kHz = 3 ms): the report sums the stages' own latency.
    assert loaded["headset"]["algorithmic_latency_ms"] == pytest.approx(1e3 * DELAY_SAMPLES / RATE)
    assert loaded["masking"]["algorithmic_latency_ms"] == 0.0
    # Every block the meter timed is in the histogram data, none invented.
    times = bench.block_times_us(pipelines["headset"])
    assert times.shape == (50,) and np.all(times > 0)
    assert times.max() == pytest.approx(reports["headset"].max_us)


def test_headset_input_is_the_office_mix_seeded_and_finite():
    a = bench.office_headset_mix(RATE, RATE, channels=2, seed=3)
    b = bench.office_headset_mix(RATE, RATE, channels=2, seed=3)
    assert a.shape == (RATE, 2) and a.dtype == np.float32
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    # Same speech, independent noise per headset: the channels differ but correlate strongly.
    assert not np.array_equal(a[:, 0], a[:, 1])
    assert np.corrcoef(a[:, 0], a[:, 1])[0, 1] > 0.5
    # Speech is the packaged recording at a 0.25-ish peak; the noise stays well below clipping.
    assert 0.1 < np.max(np.abs(a)) < 1.0


def test_document_refuses_reports_of_different_settings():
    _, first = bench.run_pipelines(("headset",), 0.1, RATE, BLOCK, 1, builders=simple_builders())
    _, other = bench.run_pipelines(
        ("masking",), 0.1, 48000, 480, 1, builders=simple_builders(48000, 480)
    )
    with pytest.raises(
        ConfigError,
        match=r"pipeline 'masking' ran at 48000 Hz / block 480, "
        r"the others at 16000 Hz / block 160",
    ):
        bench.bench_document({**first, **other}, 0.1, 1, 1)
    with pytest.raises(ConfigError, match="at least one pipeline report"):
        bench.bench_document({}, 0.1, 1, 1)


def test_unknown_pipeline_name_is_refused():
    with pytest.raises(
        ConfigError, match=r"pipeline 'receive' is not one of \['headset', 'masking'\]"
    ):
        bench.run_pipelines(("receive",), 0.1, RATE, BLOCK, 1, builders=simple_builders())


def test_plot_is_a_png_with_one_panel_per_pipeline(tmp_path):
    pipelines, reports = bench.run_pipelines(
        ("headset", "masking"), 0.5, RATE, BLOCK, 4, builders=simple_builders()
    )
    path = tmp_path / "plots" / "hist.png"
    bench.plot_histograms(pipelines, reports, path)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    # PNG IHDR: width and height, big-endian, at bytes 16..24; two panels of 3.2 in at 100 dpi.
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (800, 640)


# -- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("delay_samples", [0, 1, 479, 1234])
def test_click_locator_finds_a_known_loopback_delay_to_the_sample(delay_samples):
    # The loopback is simulated by the Delay stage on the simulated clock, blocks of 480.
    rate = 48000
    train, onsets = bench.click_train(rate, clicks=4, period_s=0.25)
    loop = Pipeline([Delay(rate, 480, 1, delay_samples=delay_samples)], name="loopback")
    recorded = run_array(loop, train[:, None])[:, 0] * 0.3
    recorded += 0.003 * np.random.default_rng(5).standard_normal(len(recorded)).astype(np.float32)
    lags = bench.locate_clicks(train, recorded, onsets, bench.click_length(rate), 6000)
    np.testing.assert_array_equal(lags, delay_samples)


def test_click_locator_reports_no_return_in_noise():
    rate = 48000
    train, onsets = bench.click_train(rate, clicks=3, period_s=0.25)
    silence = 0.01 * np.random.default_rng(6).standard_normal(len(train))
    lags = bench.locate_clicks(train, silence, onsets, bench.click_length(rate), 6000)
    np.testing.assert_array_equal(lags, -1)


# -- peers ----------------------------------------------------------------------------------


def test_compare_reports_ratios_consistently_and_names_missing_peers(monkeypatch):
    def missing(signal):
        raise ImportError("No module named 'imaginary_ns'")

    monkeypatch.setattr(
        bench,
        "PEERS",
        (*bench.PEERS, ("imaginary", "Imaginary NS", "imaginary-ns", 16000, missing)),
    )

    def build(rate, block):
        return Pipeline([Gain(rate, block, 1)], name="headset")

    result = bench.compare_peers(0.5, build_headset=build)
    assert result["frame_ms"] == 10.0
    assert set(result["ours"]) == {"16000", "48000"}
    assert result["ours"]["16000"]["frames"] == 50
    gone = result["peers"]["imaginary"]
    assert gone["installed"] is False
    assert "not installed (pip install imaginary-ns)" in gone["error"]
    for key, peer in result["peers"].items():
        if key == "imaginary" or not peer["installed"]:
            continue
        ours = result["ours"][str(peer["sample_rate"])]
        assert peer["frames"] == int(0.5 / 0.010)
        assert peer["ratio_p50"] == pytest.approx(peer["p50_us"] / ours["p50_us"])
    text = bench.compare_text(result)
    assert "Imaginary NS" in text and "not installed" in text


# -- the pipeline factories -------------------------------------------------------------------


def test_headset_factory_wraps_the_suppressor_and_reports_its_latency():
    from audio_engine.dsp.suppressor import NoiseSuppressor
    from audio_engine.pipelines import build_headset_pipeline

    pipeline = build_headset_pipeline(16000, 160, channels=2)
    assert pipeline.name == "headset"
    assert (pipeline.channels, pipeline.output_channels) == (2, 2)
    (stage,) = pipeline.stages
    assert isinstance(stage, NoiseSuppressor)
    assert pipeline.latency_samples == stage.latency_samples
    report = pipeline.report()
    assert report.algorithmic_latency_ms == pytest.approx(1e3 * stage.latency_samples / 16000)


def test_headset_factory_passes_bad_settings_to_the_stage_check():
    from audio_engine.pipelines import build_headset_pipeline

    with pytest.raises(ConfigError, match=r"sample_rate=22050 is not supported"):
        build_headset_pipeline(22050, 160)


def test_masking_factory_scales_the_example_site_to_any_zone_count():
    from audio_engine.dsp.bands import band_edges_hz, band_index
    from audio_engine.pipelines import EXAMPLE_SITE, build_masking_pipeline
    from audio_engine.site import load_site_config

    site = load_site_config(EXAMPLE_SITE)
    pipeline = build_masking_pipeline(32, 16000, 160)
    assert pipeline.name == "masking"
    assert (pipeline.channels, pipeline.output_channels) == (1, 32)
    (generator,) = pipeline.stages
    expected = [site.zones[z % len(site.zones)].level_dba for z in range(32)]
    np.testing.assert_allclose(generator.requested_level_dba, expected)
    np.testing.assert_allclose(
        generator.ceiling_dba, [site.zones[z % len(site.zones)].ceiling_dba for z in range(32)]
    )
    # At 16 kHz only the bands whose upper edge is below 8 kHz remain, and all of those do.
    upper = band_edges_hz(np.array([band_index(float(f)) for f in generator.target_nominal_hz]))[1]
    assert upper.max() < 8000.0
    kept = [f for f in site.target_nominal_hz if band_edges_hz(band_index(float(f)))[1] < 8000.0]
    np.testing.assert_array_equal(generator.target_nominal_hz, kept)


def test_masking_factory_builds_a_site_file_as_it_is():
    from audio_engine.pipelines import EXAMPLE_SITE, build_masking_pipeline
    from audio_engine.site import load_site_config

    site = load_site_config(EXAMPLE_SITE)
    pipeline = build_masking_pipeline(EXAMPLE_SITE, 48000, 480)
    assert pipeline.output_channels == len(site.zones)
    np.testing.assert_array_equal(pipeline.stages[0].target_nominal_hz, site.target_nominal_hz)
    # A real site is never trimmed: its curve above Nyquist is refused by the generator.
    with pytest.raises(ConfigError, match=r"target curve reaches 8000 Hz"):
        build_masking_pipeline(site, 16000, 160)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, r"zones=0 is not an integer in 1\.\.64"),
        (65, r"zones=65 is not an integer in 1\.\.64"),
        (2.0, r"site_config_or_zones=2\.0 is neither a site config, a TOML path nor a zone count"),
        (None, r"site_config_or_zones=None is neither"),
    ],
)
def test_masking_factory_refuses_bad_zone_counts(value, message):
    from audio_engine.pipelines import build_masking_pipeline

    with pytest.raises(ConfigError, match=message):
        build_masking_pipeline(value, 48000, 480)


def test_click_probe_plays_the_train_and_records_the_input_aligned():
    rate = 48000
    train, _ = bench.click_train(rate, clicks=2, period_s=0.1)
    probe = bench.ClickProbe(rate, 480, train)
    loopback = np.roll(train, 300)[:, None]  # what a loopback would return: the train, later
    played = run_array(Pipeline([probe], name="roundtrip"), loopback)
    assert probe.done
    np.testing.assert_array_equal(played[:, 0], train)
    np.testing.assert_array_equal(probe.recorded, loopback[:, 0])


# -- through a sound server -----------------------------------------------------------------


@pytest.fixture
def loop_sink(sound_server):
    """A null sink whose monitor source returns what is played into it: a loopback cable."""
    import os

    from audio_engine.io import virtual_device as vd

    name = f"aebench{os.getpid()}"
    vd.create_virtual_speaker(name)
    yield name
    vd.remove_virtual_speaker(name)


@pytest.mark.soundserver
def test_roundtrip_through_a_null_sink_monitor_returns_every_click_at_one_delay(loop_sink):
    result = bench.measure_roundtrip(loop_sink, f"{loop_sink}.monitor", 48000, 480, clicks=5)
    assert result["clicks_returned"] == 5
    # One server clock for both directions: every click comes back after the same delay, to
    # within one block (where in a block the server's timer picks the click up).
    spread_ms = max(result["per_click_ms"]) - min(result["per_click_ms"])
    assert spread_ms <= 10.0
    assert 0.0 < result["measured_ms"] < 500.0
    assert result["reported_input_ms"] > 0.0 and result["reported_output_ms"] > 0.0


@pytest.mark.soundserver
def test_bench_on_a_device_reports_portaudio_latency_and_the_roundtrip(loop_sink, tmp_path, capsys):
    path = tmp_path / "device.json"
    status = main(
        [
            "bench",
            "--device",
            loop_sink,
            "--input-device",
            f"{loop_sink}.monitor",
            "--roundtrip",
            "--seconds",
            "1",
            "--zones",
            "1",
            "--json",
            str(path),
        ]
    )
    assert status == 0
    document = json.loads(path.read_text())
    assert document["backend"] == f"device {loop_sink}"
    for name in ("headset", "masking"):
        assert set(bench.PIPELINE_KEYS) <= set(document[name])
        assert document[name]["device_output_latency_ms"] > 0.0
        assert document[name]["blocks"] > 50  # about 100 blocks of 10 ms in 1 s
    assert document["headset"]["device_input_latency_ms"] > 0.0
    assert document["roundtrip"]["clicks_returned"] == 5
    assert "Round trip" in capsys.readouterr().out


def test_one_pipeline_with_compare_writes_only_what_ran(tmp_path, capsys):
    path = tmp_path / "masking.json"
    status = main(
        [
            "bench",
            "--seconds",
            "0.5",
            "--pipeline",
            "masking",
            "--zones",
            "1",
            "--compare",
            "--json",
            str(path),
        ]
    )
    assert status == 0
    document = json.loads(path.read_text())
    assert "masking" in document and "headset" not in document and "roundtrip" not in document
    compare = document["compare"]
    assert set(compare["peers"]) == {"webrtc_ns", "speexdsp", "rnnoise"}
    assert set(compare["ours"]) == {"16000", "48000"}
    # Every peer is either timed on all of its 10 ms frames or named as missing.
    for peer in compare["peers"].values():
        if peer["installed"]:
            assert peer["frames"] == 50
        else:
            assert "pip install" in peer["error"]
    assert "ratio = peer / ours" in capsys.readouterr().out


def test_verdict_names_misses_and_the_worst_block_against_the_deadline():
    from audio_engine.latency import LatencyMeter

    meter = LatencyMeter(16000, 160)  # 10 ms deadline
    meter.record(2_000_000)  # 2 ms
    meter.record(20_000_000)  # 20 ms: late
    text = bench.verdict_text({"headset": meter.report("headset")})
    assert text == (
        "headset: MISSED deadlines — 1 of 2 blocks late, worst block 200.0 % of the 10000 µs "
        "deadline, 110.00 % of a core on average"
    )
    _, reports = bench.run_pipelines(("masking",), 0.2, RATE, BLOCK, 4, builders=simple_builders())
    assert bench.verdict_text(reports).startswith("masking: kept every deadline — 0 of 20 blocks")
