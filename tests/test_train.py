"""train.py end to end, as a user runs it: real subprocesses, tiny models, generated data."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open

from captcha import synth
from captcha.recognizer import Recognizer

from conftest import ROOT, subprocess_env

TINY = ["--arch", "resnet18", "--size", "32x64", "--batch-size", "8", "--workers", "0", "--threads", "1"]


def train(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(), cwd=ROOT, **kw)


def test_trains_both_forms_and_loss_goes_down(tmp_path):
    out = tmp_path / "run"
    result = train("--synthetic", "64", "--synthetic-val", "16", "--alphabet", "0123456789", "--length", "4",
                   "--form", "both", "--steps", "40", "--eval-every", "10", "--lr", "2e-3", "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    for form in ("one_go", "sequential"):
        history = metrics["forms"][form]["history"]
        assert [h["step"] for h in history] == [10, 20, 30, 40]
        assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.05, history
        assert history[-1]["images_per_s"] > 0
    assert metrics["args"]["lr"] == 2e-3 and metrics["args"]["steps"] == 40  # the model card quotes these
    log = result.stderr + result.stdout
    assert f"init one_go: trunk from {out / 'sequential.safetensors'}" in log  # one-go starts where sequential ended
    assert "init sequential" not in log  # which started from scratch (--init auto for a resnet18)
    assert log.index("sequential: best val") < log.index("one_go: best val")
    rec = Recognizer.from_pretrained(out)
    assert set(rec.models) == {"one_go", "sequential"} and rec.spec.alphabet == "0123456789"
    pred = rec.predict(synth.generate("0123", seed=1))
    assert len(pred.one_go.text) == len(pred.sequential.text) == 4
    for form, info in rec.infos.items():  # calibrated on the 16 validation images at the end
        fitted = info.calibration
        assert fitted["count"] == 16 and fitted["fitted_on"] == "16 validation images", fitted
        assert 0.25 <= fitted["temperature"] <= 4 and 0 < fitted["threshold"] <= 1
        assert f"{form}: calibrated on 16 validation images" in result.stderr + result.stdout
    assert pred.answer.threshold == max(i.calibration["answer_threshold"] for i in rec.infos.values())
    assert "int8 trunk: not made (0 labelled images in --data; it needs 800)" in result.stderr + result.stdout
    assert rec.infos["one_go"].int8 == {}


def test_both_starts_sequential_from_init_and_one_go_from_the_trunk_sequential_adapted(tmp_path, tiny_weights):
    out = tmp_path / "run"
    result = train("--synthetic", "16", "--synthetic-val", "8", "--alphabet", "0123456789", "--length", "4",
                   "--form", "both", "--steps", "2", "--eval-every", "2", "--init", str(tiny_weights),
                   "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stderr + result.stdout
    assert f"init sequential: trunk from {tiny_weights / 'sequential.safetensors'}" in log
    assert f"init one_go: trunk from {out / 'sequential.safetensors'}" in log
    assert str(tiny_weights / "one_go.safetensors") not in log


def test_a_folder_of_six_character_captchas_of_another_alphabet(tmp_path):
    """The README's command for your own CAPTCHAs (at a small input, for speed)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    data = tmp_path / "six"
    synth.write_folder(data, 40, seed=5, alphabet=alphabet, length=6)
    out = tmp_path / "OUT"
    result = train("--data", str(data), "--alphabet", alphabet, "--length", "6", "--form", "both",
                   "--arch", "resnet18", "--steps", "10", "--out", str(out), "--size", "48", "--workers", "0",
                   "--threads", "1", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("one_go.safetensors", "sequential.safetensors"):
        with safe_open(str(out / name), "pt") as f:
            spec = json.loads(f.metadata()["spec"])
        assert spec["alphabet"] == alphabet and spec["length"] == 6


def test_resume_after_a_kill(tmp_path):
    out = tmp_path / "run"
    args = ["--synthetic", "64", "--synthetic-val", "8", "--alphabet", "01", "--length", "2", "--form", "one-go",
            "--steps", "150", "--eval-every", "5", "--out", str(out), *TINY]
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], env=subprocess_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "checkpoints" / "one_go.pt"
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    killed_at = json.loads((out / "metrics.json").read_text())["forms"]["one_go"]["history"][-1]["step"]
    assert 0 < killed_at < 150

    result = train(*args, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = [line for line in (result.stdout + result.stderr).splitlines() if "resumed from" in line]
    assert resumed and int(resumed[0].split("at step ")[1].split("/")[0]) > 0
    history = json.loads((out / "metrics.json").read_text())["forms"]["one_go"]["history"]
    steps = [h["step"] for h in history]
    assert steps == sorted(set(steps)) and steps[-1] == 150  # one history, continued, finished
    assert Recognizer.from_pretrained(out).models

    longer = train(*[a if a != "150" else "300" for a in args], "--resume")  # another schedule: refused
    assert longer.returncode == 2 and "--init" in longer.stderr and "Traceback" not in longer.stderr


def test_torchrun_two_processes_with_gloo(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train.py"), "--synthetic", "48", "--synthetic-val", "8", "--alphabet", "0123456789",
           "--length", "4", "--form", "one-go", "--steps", "6", "--eval-every", "3", "--out", str(out), *TINY]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    history = metrics["forms"]["one_go"]["history"]
    assert [h["step"] for h in history] == [3, 6] and history[-1]["count"] == 8  # validation summed over ranks
    assert "x 2 processes" in result.stderr + result.stdout
    assert Recognizer.from_pretrained(out).models


@pytest.mark.parametrize("case", ["bad label", "empty folder", "missing folder", "bad init", "bad size"])
def test_bad_input_gets_one_clear_message(tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    args = ["--data", str(data), "--alphabet", "0123456789", "--length", "4", "--steps", "2", "--out",
            str(tmp_path / "out"), *TINY]
    if case == "bad label":
        synth.write_folder(data, 3, alphabet="0123456789", length=4)
        synth.generate("12x4").save(data / "12x4.png")
        expect = "12x4.png"
    elif case == "empty folder":
        expect = "no labelled images"
    elif case == "missing folder":
        args[1] = str(tmp_path / "nope")
        expect = "no such folder"
    elif case == "bad init":
        synth.write_folder(data, 3, alphabet="0123456789", length=4)
        args += ["--init", str(tmp_path / "no-weights")]
        expect = "neither a weights folder"
    else:
        args += ["--size", "big"]
        expect = "--size is N, HxW"
    before = sorted(p.name for p in data.iterdir()) if data.exists() else None
    result = train(*args)
    assert result.returncode != 0
    assert expect in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    if before is not None:
        assert sorted(p.name for p in data.iterdir()) == before  # nothing lost or moved


def test_joint_trains_both_forms_on_one_trunk(tmp_path):
    """--form joint: one pass per image trains both heads; the files share their trunk and the
    Recognizer runs it once."""
    out = tmp_path / "joint"
    result = train("--synthetic", "64", "--synthetic-val", "16", "--alphabet", "0123456789", "--length", "4",
                   "--form", "joint", "--steps", "30", "--eval-every", "10", "--lr", "2e-3", "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((out / "metrics.json").read_text())["forms"]["joint"]["history"]
    assert [h["step"] for h in history] == [10, 20, 30]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.05, history
    assert {"one_go", "sequential"} <= set(history[-1])  # each form's validation figures
    rec = Recognizer.from_pretrained(out)
    assert rec.shared_trunk and rec.models["one_go"].trunk is rec.models["sequential"].trunk
    assert {info.summary["trained"] for info in rec.infos.values()} == {"joint"}
    pred = rec.predict(synth.generate("0123", seed=1))
    assert len(pred.one_go.text) == len(pred.sequential.text) == 4

    # a second round starts from those weights (how training continues from shipped weights)
    again = train("--synthetic", "32", "--synthetic-val", "8", "--alphabet", "0123456789", "--length", "4",
                  "--form", "joint", "--steps", "2", "--init", str(out), "--out", str(tmp_path / "round2"), *TINY)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "init one_go: all weights from" in again.stderr + again.stdout
    assert "init sequential: all weights from" in again.stderr + again.stdout

    # and a round at another input size and reading box keeps the heads (resampled), not just the trunk
    TALLER = [a if a != "32x64" else "48x64" for a in TINY]
    resized = train("--synthetic", "32", "--synthetic-val", "8", "--alphabet", "0123456789", "--length", "4",
                    "--form", "joint", "--steps", "2", "--init", str(out), "--crop", "0,0.1,1,0.9",
                    "--out", str(tmp_path / "round3"), *TALLER)
    assert resized.returncode == 0, resized.stderr[-3000:]
    for form in ("one_go", "sequential"):
        assert f"init {form}: all weights from" in resized.stderr + resized.stdout
        assert "made for 4 characters" in resized.stderr + resized.stdout
    assert Recognizer.from_pretrained(tmp_path / "round3").spec.height == 48


def test_validation_split_does_not_follow_the_training_seed(tmp_path):
    """Rounds that continue one another with a new --seed must validate on the same labels, or the
    later round's validation holds images the earlier round trained on."""
    import train as train_module
    from captcha.spec import CaptchaSpec

    data = tmp_path / "data"
    synth.write_folder(data, 40, seed=3)
    spec = CaptchaSpec()

    class Quiet:  # a one-process CPU runtime that prints nothing
        rank, world, device = 0, 1, torch.device("cpu")
        print = staticmethod(lambda *a, **k: None)

    def val_labels(*extra):
        args = train_module.parse_args(["--data", str(data), "--val-fraction", "0.25", *extra])
        _, val, _ = train_module.make_data(args, spec, Quiet(), train_module.read_folders(args, Quiet()))
        return sorted(s.label for s in val.samples)

    first = val_labels("--seed", "0")
    assert len(first) == 10
    assert val_labels("--seed", "5") == first
    assert val_labels("--seed", "5", "--split-seed", "1") != first


def budgeted_run(tmp_path, monkeypatch, step_seconds):
    """A one-minute one-go run on a fake clock: training step n (from 1) takes step_seconds(n) s, each
    validation 5 s. -> (the stage's metrics, the clock at the end)."""
    import train as train_module
    from captcha import training

    now, steps = [0.0], [0]
    monkeypatch.setattr(train_module, "clock", lambda: now[0])
    real_step, real_evaluate = training.train_step, train_module.evaluate

    def step(*a, **k):
        steps[0] += 1
        now[0] += step_seconds(steps[0])
        return real_step(*a, **k)

    def evaluate(*a, **k):
        now[0] += 5.0
        return real_evaluate(*a, **k)

    monkeypatch.setattr(training, "train_step", step)
    monkeypatch.setattr(train_module, "evaluate", evaluate)
    out = tmp_path / "run"
    train_module.main(["--synthetic", "64", "--synthetic-val", "8", "--alphabet", "0123456789", "--length", "4",
                       "--form", "one-go", "--minutes", "1", "--out", str(out), *TINY])
    assert Recognizer.from_pretrained(out).models  # the best weights were kept
    return json.loads((out / "metrics.json").read_text())["forms"]["one_go"], now[0]


def test_minutes_fit_the_schedule_to_the_time_budget(tmp_path, monkeypatch):
    """--minutes: a few steps and one validation are timed, then the one-cycle schedule is sized so that
    the run, validations and saving included, ends inside the budget. Each step takes 2 s."""
    forms, end = budgeted_run(tmp_path, monkeypatch, lambda n: 2.0)
    steps = [h["step"] for h in forms["history"]]
    # 8 steps (16 s) + a validation (5 s) measured; validations are then a tenth of the budget apart (6 s:
    # every 3 steps), and the 39 s left, less a 3% margin and the last validation, pay for 8 more steps at
    # 2 s + 5/3 s each: 16 in all, ending at 57 s of the 60
    assert forms["total_steps"] == 16 and steps == [8, 9, 12, 15, 16]
    assert end == 57


def test_a_run_that_slows_down_refits_its_steps_to_the_time_left(tmp_path, monkeypatch):
    """Steps 2 s while timed, 3 s afterwards: planned at 16 steps, the run would take 65 s. At the first
    validation after the plan (step 9, 29 s) the pace is 3 s: the 31 s left, less the margin and the last
    validation, pay for 5 more steps at 3 s + 5/3 s each."""
    forms, end = budgeted_run(tmp_path, monkeypatch, lambda n: 2.0 if n <= 8 else 3.0)
    assert forms["total_steps"] == 14 and [h["step"] for h in forms["history"]] == [8, 9, 12, 14]
    assert end == 54


def test_minutes_must_be_positive(tmp_path):
    result = train("--synthetic", "8", "--minutes", "0", "--out", str(tmp_path / "out"), *TINY)
    assert result.returncode == 2 and "--minutes must be more than 0" in result.stderr


def test_heads_by_length_need_a_length_range(tmp_path):
    result = train("--synthetic", "8", "--length", "4", "--attention", "lengths", "--steps", "1",
                   "--out", str(tmp_path / "out"), *TINY)
    assert result.returncode == 2 and "read a length range" in result.stderr
    assert not (tmp_path / "out" / "one_go.safetensors").exists()


def _labelled_folder(folder, texts, labels_file=True):
    """Generated CAPTCHAs of `texts`, listed in labels.csv (nested) or named by their answers."""
    lines = ["file,label"]
    for i, text in enumerate(texts):
        path = folder / (f"imgs/{i % 3}/{i:04d}.png" if labels_file else f"{text}_{i}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        synth.generate(text, seed=i, width=96, height=32).save(path)
        lines.append(f"{path.relative_to(folder)},{text}")
    if labels_file:
        (folder / "labels.csv").write_text("\n".join(lines) + "\n")


def test_data_and_out_alone_choose_every_setting(tmp_path):
    """The user's folder alone: alphabet, length range, size and init from the data, each said with its reason."""
    data = tmp_path / "data"
    texts = ["ab12", "ba2", "a1b2c", "cc11", "2ab", "1c2a"] * 4
    _labelled_folder(data, texts)
    out = tmp_path / "out"
    result = train("--data", str(data), "--out", str(out), "--arch", "resnet18", "--steps", "2", "--workers", "0",
                   "--threads", "1", "--batch-size", "4", "--form", "joint")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "labels from" in log and "labels.csv" in log
    assert "alphabet auto: the 5 characters of the 24 labels: 12abc" in log
    assert "length auto: 3-5" in log and "end symbol" in log
    assert "size auto: 64x192 (HxW), for images typically 96x32 (WxH)" in log
    assert "init auto: scratch (no shipped weights for resnet18)" in log
    rec = Recognizer.from_pretrained(out, engine="torch", precision="fp32")
    assert rec.spec.alphabet == "12abc" and rec.spec.lengths == "3-5" and (rec.spec.height, rec.spec.width) == (64, 192)


def test_case_insensitive_folds_labels_and_reads_lower_case(tmp_path):
    data = tmp_path / "data"
    _labelled_folder(data, ["Ab12", "aB21", "AB11", "ab22"] * 3, labels_file=False)
    out = tmp_path / "out"
    result = train("--data", str(data), "--out", str(out), "--case-insensitive", "--steps", "1", "--form", "one-go",
                   *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    info = Recognizer.from_pretrained(out).infos["one_go"]
    assert info.spec.alphabet == "12ab" and info.summary["case_insensitive"] is True


@pytest.mark.parametrize("case", ["missing image", "unlabelled image", "conflicting duplicate", "empty label",
                                  "too long"])
def test_bad_labels_get_one_message_naming_the_files(tmp_path, case):
    data = tmp_path / "data"
    _labelled_folder(data, ["ab12", "ba21", "ab11", "ba22"] + (["ab12a"] if case == "too long" else []))
    csv = data / "labels.csv"
    extra = {"missing image": "imgs/0/gone.png,ab12", "conflicting duplicate": "imgs/0/0000.png,ba22",
             "empty label": "imgs/1/0001.png,", "too long": None, "unlabelled image": None}[case]
    args = ["--data", str(data), "--out", str(tmp_path / "out"), "--steps", "1", *TINY]
    if extra:
        csv.write_text(csv.read_text() + extra + "\n")
    if case == "unlabelled image":
        synth.generate("ab12").save(data / "imgs" / "stray.png")
    if case == "too long":
        args += ["--length", "4"]
    expect = {"missing image": "gone.png does not exist", "unlabelled image": "stray.png: an image without a label",
              "conflicting duplicate": "0000.png is listed twice, as 'ab12' and 'ba22'",
              "empty label": "'imgs/1/0001.png' has an empty label",
              "too long": "has 5 characters, expected 4"}[case]
    before = sorted((p, p.stat().st_size) for p in data.rglob("*"))
    result = train(*args)
    assert result.returncode == 2 and expect in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert sorted((p, p.stat().st_size) for p in data.rglob("*")) == before


def test_a_run_on_enough_labelled_images_ends_with_a_checked_int8_trunk(tmp_path):
    pytest.importorskip("onnxruntime")
    data, out = tmp_path / "data", tmp_path / "run"
    synth.write_folder(data, 820, seed=5, alphabet="0123456789", length=4, width=64, height=32)
    result = train("--data", str(data), "--alphabet", "0123456789", "--length", "4", "--form", "joint",
                   "--steps", "4", "--out", str(out), *TINY, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "int8 trunk: readings agree with fp32 on" in result.stderr + result.stdout
    for info in Recognizer.from_pretrained(out).infos.values():
        check = info.int8["check"]
        assert info.int8["ranges"] and info.int8["calibration_images"] == 300 and check["images"] == 820 - 300
