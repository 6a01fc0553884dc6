"""The Hub, offline: repo ids resolved from a cache laid out as huggingface_hub lays it out,
the clear error with no cache, and the push dry-run listing exactly what upload_folder sends."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import constants
from huggingface_hub.hf_api import HfApi

from captcha import hub
from captcha.__main__ import main
from captcha.errors import CaptchaError, WeightsError
from captcha.recognizer import Recognizer
from conftest import ROOT, subprocess_env

REPO_ID = "someone/tiny-captcha"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fill_cache(cache: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """What snapshot_download leaves behind: refs/main -> commit, snapshots/<commit>/* linking into blobs/."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache, offline, whatever the environment says."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def weights_files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("one_go.safetensors", "sequential.safetensors")}


@pytest.mark.parametrize("text, expected", [
    ("someone/captcha", True), ("org-1/my.model_v2", True),
    ("weights", False), ("weights/", False), ("./weights", False), ("/abs/weights", False),
    ("a/b/c", False), ("user/bad--name", False), ("one_go.safetensors", False),
])
def test_what_counts_as_a_repo_id(text, expected):
    assert hub.is_repo_id(text) is expected


def test_repo_id_loads_from_a_populated_cache_offline(hub_cache, tiny_weights):
    snapshot = fill_cache(hub_cache, REPO_ID, {**weights_files(tiny_weights), "README.md": b"# card\n"})
    assert hub.resolve(REPO_ID) == snapshot
    rec = Recognizer.from_pretrained(REPO_ID)
    assert set(rec.models) == {"one_go", "sequential"}
    assert rec.infos["sequential"].path.parent == snapshot
    assert rec.spec.alphabet == "0123456789abcdef"


def test_local_folder_wins_over_a_repo_id(hub_cache, tiny_weights, tmp_path, monkeypatch):
    local = tmp_path / REPO_ID  # a folder spelled like the repo id; the (empty) cache would fail
    local.mkdir(parents=True)
    for name, data in weights_files(tiny_weights).items():
        (local / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    rec = Recognizer.from_pretrained(REPO_ID)
    assert rec.infos["one_go"].path.resolve() == (local / "one_go.safetensors").resolve()


def test_offline_without_cache_is_a_clear_error(hub_cache, capsys):
    with pytest.raises(WeightsError, match="not in the local Hub cache.*HF_HUB_OFFLINE=1"):
        Recognizer.from_pretrained("someone/missing")
    assert main(["predict", "--weights", "someone/missing", str(ROOT / "data" / "9oFyb.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: someone/missing: no such local folder") and "Traceback" not in err


def test_cached_repo_without_weights_is_a_clear_error(hub_cache):
    fill_cache(hub_cache, REPO_ID, {"README.md": b"# card\n"})
    with pytest.raises(WeightsError, match="holds no one_go.safetensors or sequential.safetensors"):
        Recognizer.from_pretrained(REPO_ID)


def test_cli_reads_through_the_hub_cache_named_by_the_environment(tmp_path, tiny_weights):
    """HF_HUB_CACHE and HF_HUB_OFFLINE as a user sets them, in a fresh process."""
    fill_cache(tmp_path / "hub", REPO_ID, weights_files(tiny_weights))
    image = ROOT / "data" / "9oFyb.png"
    proc = subprocess.run([sys.executable, "-m", "captcha", "predict", "--weights", REPO_ID, str(image)],
                          env=subprocess_env(HF_HUB_CACHE=str(tmp_path / "hub")), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert len(row["one_go"]["text"]) == len(row["sequential"]["text"]) == 4


# --- push ---------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path) -> Path:
    """A checkout with everything a Space needs, and everything it must not get."""
    root = tmp_path / "project"
    files = {
        "app.py": "print('app')\n", "streamlit_app.py": "x = 1\n", "requirements.txt": "gradio==6.31.0\n",
        "README.md": "---\ntitle: t\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\n---\n# CAPTCHA reader\n",
        "LICENSE": "MIT", "captcha/__init__.py": "", "captcha/hub.py": "#\n",
        "captcha/__pycache__/hub.cpython-311.pyc": "bytecode",
        "weights/one_go.safetensors": "w" * 3000, "weights/sequential.safetensors": "w" * 2000,
        "weights/README.md": "# card\n", "weights/.one_go.safetensors.tmp-123": "half a file",
        "weights/experiment.safetensors": "not shipped", "data/ab12.png": "png", "data/CD34.PNG": "png",
        "data/notes.txt": "no", "data/train/ef56.png": "a dataset, not samples", "data/._ab12.png": "macOS junk",
        "captcha/.#hub.py": "an editor's lock file",
        "tests/test_x.py": "", "train.py": "", "runs/captcha/checkpoints/one_go.pt": "ckpt",
        ".git/config": "", ".env": "HF_TOKEN=secret", ".cache/huggingface/x": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


SPACE_LIST = ["LICENSE", "README.md", "app.py", "captcha/__init__.py", "captcha/hub.py", "data/CD34.PNG", "data/ab12.png",
              "requirements.txt", "streamlit_app.py", "weights/README.md", "weights/one_go.safetensors",
              "weights/sequential.safetensors"]


def test_space_dry_run_lists_exactly_the_app(project):
    upload = hub.plan("someone/captcha", space=True, root=project)
    assert upload.repo_type == "space"
    assert sorted(name for name, _ in upload.files()) == SPACE_LIST
    assert dict(upload.files())["weights/one_go.safetensors"] == 3000
    assert upload.problems() == []
    listing = upload.listing()
    assert "to the Gradio Space https://huggingface.co/spaces/someone/captcha" in listing
    assert re.search(r"3\.0 kB\s+weights/one_go\.safetensors", listing)
    assert f"would upload {len(SPACE_LIST)} files" in listing


def test_model_dry_run_lists_weights_and_card(project):
    upload = hub.plan("someone/captcha", weights=project / "weights")
    assert sorted(name for name, _ in upload.files()) == ["README.md", "one_go.safetensors", "sequential.safetensors"]
    assert "to the model repo https://huggingface.co/someone/captcha" in upload.listing()


def test_problems_name_what_would_break(project):
    (project / "weights" / "one_go.safetensors").unlink()
    (project / "weights" / "sequential.safetensors").unlink()
    (project / "README.md").write_text("# no front matter\n")
    problems = " | ".join(hub.plan("someone/captcha", space=True, root=project).problems())
    assert "no weights" in problems and "sdk None" in problems and "app_file None" in problems
    assert "no weights" in " ".join(hub.plan("someone/captcha", weights=project / "weights").problems())


def test_push_sends_exactly_what_the_dry_run_lists(project, monkeypatch):
    """Through the real upload_folder, stopped at the commit: the listing cannot drift from the upload."""
    sent, created = [], []
    monkeypatch.setattr(hub, "_check_can_push", lambda: None)
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, **kw: created.append((repo_id, kw)))
    monkeypatch.setattr(huggingface_hub.hf_api, "is_xet_available", lambda: False)  # the single-commit path
    monkeypatch.setattr(HfApi, "_validate_yaml", lambda self, content, **kw: None)  # a network call
    monkeypatch.setattr(HfApi, "create_commit", lambda self, operations, **kw: sent.extend(operations))
    upload = hub.plan("someone/captcha", space=True, root=project)
    ignore_before = list(upload.ignore)
    assert hub.push(upload) == "https://huggingface.co/spaces/someone/captcha"
    assert sorted(op.path_in_repo for op in sent) == sorted(name for name, _ in upload.files()) == SPACE_LIST
    assert created == [("someone/captcha", {"repo_type": "space", "private": False, "exist_ok": True,
                                            "space_sdk": "gradio"})]
    assert upload.ignore == ignore_before  # upload_folder appends to the list it is given


def test_push_needs_a_token_and_the_network(project, tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda *a, **kw: pytest.fail("must not reach the Hub"))
    upload = hub.plan("someone/captcha", space=True, root=project)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CaptchaError, match="HF_HUB_OFFLINE=1"):
        hub.push(upload)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CaptchaError, match="HF_TOKEN or run `hf auth login`"):
        hub.push(upload)


def test_cli_dry_run_of_this_checkout_as_a_space(capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda *a, **kw: pytest.fail("a dry run uploads nothing"))
    assert main(["push", "--repo-id", "someone/captcha", "--space", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "https://huggingface.co/spaces/someone/captcha" in out and out.rstrip().endswith("nothing was uploaded")
    listed = re.findall(r"^\s+[\d.]+ [kMG]?B  (\S+)$", out, re.M)
    assert "captcha/recognizer.py" in listed and "data/9oFyb.png" in listed and "requirements.txt" in listed
    assert not [name for name in listed if name.startswith(("tests/", "runs/", ".")) or name.endswith(".pyc")]


def test_cli_refuses_to_push_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda *a, **kw: pytest.fail("must not reach the Hub"))
    assert main(["push", "--repo-id", "someone/captcha", "--weights", str(tmp_path)]) == 2
    assert "refusing to push: no weights" in capsys.readouterr().err
    assert main(["push", "--repo-id", "not a repo", "--dry-run"]) == 2


def test_readme_front_matter_makes_this_repo_a_gradio_space():
    assert (ROOT / "README.md").is_file(), "README.md (with the Spaces front matter) is missing"
    meta = huggingface_hub.metadata_load(ROOT / "README.md") or {}
    pins = dict(re.findall(r"^([\w-]+)==([\w.]+)", (ROOT / "requirements.txt").read_text(), re.M))
    assert meta.get("sdk") == "gradio" and meta.get("app_file") == "app.py"
    assert str(meta.get("sdk_version")) == pins["gradio"]
    assert meta.get("title") and meta.get("emoji") and isinstance(meta.get("pinned"), bool)
