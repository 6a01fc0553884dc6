"""python -m captcha: each command as a user runs it (subprocesses, tiny weights)."""
import json
import subprocess
import sys

import pytest
from PIL import Image

from captcha import synth
from captcha.recognizer import Recognizer

from conftest import ROOT, TINY_SPEC, subprocess_env


def cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "captcha", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(), cwd=ROOT)


def test_predict_json_lines_match_the_recognizer(tiny_weights, sample_images):
    result = cli("predict", *sample_images[:3], "--weights", tiny_weights, "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    rec = Recognizer.from_pretrained(tiny_weights, precision="fp32")
    for row, path in zip(rows, sample_images[:3]):
        pred = rec.predict(path)
        assert row["file"] == str(path)
        assert (row["one_go"]["text"], row["sequential"]["text"]) == (pred.one_go.text, pred.sequential.text)


def test_predict_with_a_second_look_reads_as_the_recognizer_does(tiny_weights, sample_images):
    result = cli("predict", *sample_images[:3], "--weights", tiny_weights, "--precision", "fp32", "--second-look")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    rec = Recognizer.from_pretrained(tiny_weights, precision="fp32", second_look=True)
    plain = Recognizer.from_pretrained(tiny_weights, precision="fp32")
    for row, path in zip(rows, sample_images[:3]):  # random tiny weights: every answer is doubtful
        pred = rec.predict(path)
        got = [c["confidence"] for c in row["one_go"]["chars"]]
        assert got == pytest.approx([c.confidence for c in pred.one_go.chars], rel=1e-4)
        assert got != pytest.approx([c.confidence for c in plain.predict(path).one_go.chars], rel=1e-4)


def test_predict_reports_a_bad_file_and_reads_the_rest(tiny_weights, sample_images, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    result = cli("predict", bad, sample_images[0], "--weights", tiny_weights)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1 and "not an image" in rows[0]["error"] and rows[1]["one_go"]["text"]


def test_evaluate_table_and_json(tiny_weights, tmp_path):
    folder = tmp_path / "val"
    synth.write_folder(folder, 12, seed=3, alphabet=TINY_SPEC.alphabet, length=TINY_SPEC.length)
    out = tmp_path / "results.json"
    result = cli("evaluate", folder, "--weights", tiny_weights, "--json", out)
    assert result.returncode == 0, result.stderr
    assert "| one_go |" in result.stdout and "| sequential |" in result.stdout and "confusions" in result.stdout
    data = json.loads(out.read_text())
    rec = Recognizer.from_pretrained(tiny_weights)
    for form in ("one_go", "sequential"):
        r = data[form]
        assert r["count"] == 12 and 0 <= r["string_accuracy"] <= r["case_insensitive_accuracy"] <= 1
        wrong = {e["file"] for e in r["errors"]}
        # every counted error is a real misreading
        for path in folder.iterdir():
            read = getattr(rec.predict(path), form).text
            assert (read != path.stem.split("_")[0]) == (str(path) in wrong)


def test_evaluate_refuses_labels_of_another_alphabet(tiny_weights, tmp_path):
    folder = tmp_path / "val"
    synth.write_folder(folder, 2, alphabet="XYZ", length=4)
    result = cli("evaluate", folder, "--weights", tiny_weights, "--alphabet", "XYZ")
    assert result.returncode == 2 and "were asked for" in result.stderr and "Traceback" not in result.stderr


def test_predict_marks_unsure_answers_and_exits_3_when_asked(calibrated_weights, sample_images):
    rec = Recognizer.from_pretrained(calibrated_weights)
    sure = [rec.predict(p).answer.sure for p in sample_images]
    assert True in sure and False in sure
    result = cli("predict", *sample_images, "--weights", calibrated_weights)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stderr  # marked, but not a failure unless asked
    assert [row.get("unsure", False) for row in rows] == [not s for s in sure]
    assert [row["answer"]["sure"] for row in rows] == sure
    assert f"{sure.count(False)} of {len(sure)} answer(s) unsure" in result.stderr
    assert cli("predict", *sample_images, "--weights", calibrated_weights, "--fail-unsure").returncode == 3
    lenient = cli("predict", *sample_images, "--weights", calibrated_weights, "--fail-unsure", "--min-confidence", "0")
    assert lenient.returncode == 0 and all(json.loads(line)["answer"]["sure"] for line in lenient.stdout.splitlines())


def test_an_unreadable_file_exits_1_even_with_unsure_answers(calibrated_weights, sample_images, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    result = cli("predict", bad, *sample_images, "--weights", calibrated_weights, "--fail-unsure")
    assert result.returncode == 1


def test_fail_unsure_needs_a_threshold(tiny_weights, sample_images):
    result = cli("predict", sample_images[0], "--weights", tiny_weights, "--fail-unsure")
    assert result.returncode == 2 and "no calibration" in result.stderr and "--min-confidence" in result.stderr
    result = cli("predict", sample_images[0], "--weights", tiny_weights, "--min-confidence", "1.5")
    assert result.returncode == 2 and "probability from 0 to 1" in result.stderr


def test_calibrate_then_evaluate_reports_trust_and_draws_the_plot(tiny_weights, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    for f in tiny_weights.iterdir():
        (weights / f.name).write_bytes(f.read_bytes())
    fit, held = tmp_path / "fit", tmp_path / "held"
    synth.write_folder(fit, 24, seed=5, alphabet=TINY_SPEC.alphabet, length=TINY_SPEC.length)
    synth.write_folder(held, 12, seed=6, alphabet=TINY_SPEC.alphabet, length=TINY_SPEC.length)
    before = cli("evaluate", held, "--weights", weights)
    assert before.returncode == 0 and "carry no calibration" in before.stdout
    result = cli("calibrate", fit, "--weights", weights)
    assert result.returncode == 0, result.stderr
    assert "calibrated on 24 images from fit" in result.stdout and "| one_go |" in result.stdout
    rec = Recognizer.from_pretrained(weights)
    assert all(i.calibration["count"] == 24 and 0.25 <= i.temperature <= 4 for i in rec.infos.values())
    plot, out = tmp_path / "trust.png", tmp_path / "r.json"
    result = cli("evaluate", held, "--weights", weights, "--plot", plot, "--json", out)
    assert result.returncode == 0, result.stderr
    assert "| answer |" in result.stdout and "ECE" in result.stdout and "keep 90%" in result.stdout
    assert "threshold for 99%" in result.stdout and "the forms agree on" in result.stdout
    assert Image.open(plot).size[0] > 800
    data = json.loads(out.read_text())
    for form in ("one_go", "sequential", "answer"):
        t = data[form]["trust"]
        assert [row["coverage"] for row in t["risk_coverage"]] == [0.5, 0.8, 0.9, 0.95, 1.0]
        assert t["risk_coverage"][-1]["accuracy"] == pytest.approx(data[form]["string_accuracy"])
        assert t["ece_interval"][0] <= t["ece"] <= t["ece_interval"][1]
    assert 0 <= data["agreement"]["share_agree"] <= 1


def test_calibrate_refuses_an_empty_folder(tiny_weights, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("calibrate", tmp_path / "empty", "--weights", tiny_weights)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_synth_writes_named_captchas(tmp_path):
    result = cli("synth", tmp_path / "out", "--count", "5", "--length", "6", "--alphabet", "abc123")
    assert result.returncode == 0, result.stderr
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 5 and all(len(f.stem.split("_")[0]) == 6 for f in files)
    assert Image.open(files[0]).size == (256, 256)


def test_clean_moves_corrupted_files_aside_and_reports_bad_names(tmp_path):
    folder = tmp_path / "data"
    synth.write_folder(folder, 3, seed=1)
    good = sorted(p.name for p in folder.iterdir())
    data = (folder / good[0]).read_bytes()
    (folder / "trunc.png").write_bytes(data[: len(data) // 3])      # truncated PNG
    (folder / "Ab12x.png").write_bytes(b"definitely not a png")       # not an image
    synth.generate("ab!").save(folder / "ab!.png")                     # decodes, but no label
    result = cli("clean", folder)
    assert result.returncode == 0, result.stderr
    assert "2 corrupted" in result.stdout and "trunc.png" in result.stdout and "ab!.png" in result.stdout
    assert sorted(p.name for p in (folder / "_corrupted").iterdir()) == ["Ab12x.png", "trunc.png"]
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == sorted(good + ["ab!.png"])
    # nothing was lost: the moved files are byte-for-byte what was there
    assert (folder / "_corrupted" / "trunc.png").read_bytes() == data[: len(data) // 3]


def test_clean_delete_and_dry_run(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "Ab12x.png").write_bytes(b"junk")
    dry = cli("clean", folder, "--dry-run", "--json")
    assert json.loads(dry.stdout)["corrupted"] == 1 and (folder / "Ab12x.png").exists()
    result = cli("clean", folder, "--delete")
    assert result.returncode == 0 and not (folder / "Ab12x.png").exists() and not (folder / "_corrupted").exists()


def test_bench_reports_latency_and_throughput(tiny_weights):
    result = cli("bench", "--weights", tiny_weights, "--runs", "5", "--batch-size", "4", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["forms"]) == {"one_go", "sequential"}
    assert 0 < data["single_image"]["p50_ms"] <= data["single_image"]["p95_ms"]
    assert data["batch"]["images_per_s"] > 0
    engines = data["compare"]["engines"]  # every engine, timed in the same run, against plain PyTorch
    assert {"torch fp32", "onnx fp32"} <= set(engines) and data["compare"]["reference_ms"] > 0
    for row in engines.values():
        assert row["ratio_to_reference"] == pytest.approx(row["single_image"]["p50_ms"] / data["compare"]["reference_ms"],
                                                          rel=0.02)
    only = json.loads(cli("bench", "--weights", tiny_weights, "--runs", "3", "--batch-size", "2", "--engine", "onnx",
                          "--json").stdout)
    assert only["engine"] == "onnx" and "compare" not in only


def test_bench_train_throughput():
    result = cli("bench", "--train", "--arch", "resnet18", "--size", "32x64", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["images_per_s"]
    assert set(rows) == {f"{form} {p}" for form in ("one_go", "sequential", "joint") for p in ("fp32", "bf16")}
    assert all(v > 0 for v in rows.values())


@pytest.mark.parametrize("args, message", [
    (["predict", "x.png", "--weights", "/nonexistent/weights"], "no such weights folder"),
    (["evaluate", "/nonexistent/folder"], "no such"),
    (["clean", "/nonexistent/folder"], "no such folder"),
])
def test_clear_errors(args, message, tiny_weights):
    if args[0] == "evaluate":
        args = args + ["--weights", str(tiny_weights)]
    result = cli(*args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
