"""The Hugging Face Hub: weights by repo id, and pushing the weights (a model repo) or the app (a Space).

Nothing here touches the network unless asked: importing is free, a local path always wins
over a repo id spelled the same, and a populated cache works with HF_HUB_OFFLINE=1.

    resolve("weights")            -> Path("weights")              (local, as given)
    resolve("someone/captcha")    -> ~/.cache/huggingface/hub/models--someone--captcha/snapshots/<commit>
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import CaptchaError, WeightsError
from .images import IMAGE_EXTENSIONS
from .weights import FILENAMES

ROOT = Path(__file__).resolve().parent.parent
MODEL_CARD = "README.md"
# A model repo: the two weights files and their card, nothing else from the folder.
MODEL_FILES = [*FILENAMES.values(), MODEL_CARD]
# A Space: what app.py needs to start. Not tests/, runs/, checkpoints or caches: a Space
# never runs them, and a checkpoint can be bigger than everything else together.
SPACE_FILES = ["app.py", "streamlit_app.py", "requirements.txt", "README.md", "LICENSE", "captcha/*.py",
               *(f"weights/{name}" for name in MODEL_FILES),
               *(f"data/*{ext}" for ext in IMAGE_EXTENSIONS), *(f"data/*{ext.upper()}" for ext in IMAGE_EXTENSIONS)]
# Patterns match across "/" (fnmatch), so also say what never goes: bytecode, hidden files
# (e.g. save_weights' .one_go.safetensors.tmp-123) and anything in a subfolder of data/.
SPACE_IGNORE = ["*/__pycache__/*", "*.pyc", ".*", "*/.*", "data/*/*"]


def is_repo_id(text) -> bool:
    """`user/name` as the Hub spells it; a bare name, a Path or a deeper path is local."""
    if not isinstance(text, str) or text.count("/") != 1:
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def resolve(path) -> Path:
    """Where weights are on disk: a local folder or file as given, else a Hub repo id's snapshot."""
    if Path(path).exists() or not is_repo_id(path):
        return Path(path)
    return download(path)


def download(repo_id: str, revision: str | None = None) -> Path:
    """Fetch a model repo's weights and card into the standard Hub cache (or find them there)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    why = f"{repo_id}: no such local folder, so it was read as a Hugging Face Hub model repo id, but"
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES))
    except GatedRepoError:
        raise WeightsError(f"{why} the repo is gated: accept its terms on the Hub and log in "
                           f"(HF_TOKEN or `hf auth login`)") from None
    except RepositoryNotFoundError:
        raise WeightsError(f"{why} the Hub has no such model repo (a private one needs HF_TOKEN "
                           f"or `hf auth login`)") from None
    except RevisionNotFoundError:
        raise WeightsError(f"{why} it has no revision {revision or 'main'!r}") from None
    except LocalEntryNotFoundError:  # offline or unreachable, and not (completely) in the cache
        reason = "HF_HUB_OFFLINE=1 is set" if constants.is_offline_mode() else "the Hub cannot be reached"
        raise WeightsError(f"{why} it is not in the local Hub cache ({constants.HF_HUB_CACHE}) and {reason}; "
                           f"download it once with network access, or pass a local weights folder") from None
    except (HfHubHTTPError, OSError) as e:
        raise WeightsError(f"{why} fetching it failed: {e}") from None
    if not any((folder / name).is_file() for name in FILENAMES.values()):
        raise WeightsError(f"{repo_id}: the Hub repo holds no {' or '.join(FILENAMES.values())}")
    return folder


@dataclass
class Upload:
    """One push: the files of `folder` that `allow`/`ignore` select, to one Hub repo."""

    repo_id: str
    repo_type: str  # "model" or "space"
    folder: Path
    allow: list[str]
    ignore: list[str]

    @property
    def url(self) -> str:
        from huggingface_hub import constants
        return f"{constants.ENDPOINT}/{'spaces/' if self.repo_type == 'space' else ''}{self.repo_id}"

    def files(self) -> list[tuple[str, int]]:
        """(path in repo, bytes) of exactly what upload_folder sends: its walk, its filter, its defaults."""
        from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects
        folder = self.folder.expanduser().resolve()
        paths = {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob("**/*")) if p.is_file()}
        kept = filter_repo_objects(list(paths), allow_patterns=self.allow,
                                   ignore_patterns=[*self.ignore, *DEFAULT_IGNORE_PATTERNS])
        return [(name, paths[name].stat().st_size) for name in kept]

    def problems(self) -> list[str]:
        """What would make the pushed repo useless (no weights, a Space that cannot start)."""
        names = {name for name, _ in self.files()}
        prefix = "weights/" if self.repo_type == "space" else ""
        out = []
        if not any(prefix + w in names for w in FILENAMES.values()):
            out.append(f"no weights: {self.folder / prefix} holds no {' or '.join(FILENAMES.values())}; "
                       f"train some with train.py first")
        if self.repo_type == "model" and MODEL_CARD not in names:
            out.append(f"no model card: {self.folder / MODEL_CARD} is missing")
        if self.repo_type == "space":
            out += space_problems(self.folder, names)
        return out

    def listing(self) -> str:
        """The dry-run report: every file with its size, the total and the destination."""
        files = self.files()
        what = "Gradio Space" if self.repo_type == "space" else "model repo"
        lines = [f"would upload {len(files)} files ({human_size(sum(s for _, s in files))}) "
                 f"from {self.folder.resolve()} to the {what} {self.url}"]
        lines += [f"  {human_size(size):>9}  {name}" for name, size in files]
        return "\n".join(lines)


def plan(repo_id: str, space: bool = False, weights=ROOT / "weights", root=ROOT) -> Upload:
    """The upload `push` would make: the weights folder as a model repo, or the app as a Space."""
    if not is_repo_id(repo_id):
        raise CaptchaError(f"{repo_id!r} is not a Hub repo id; use user/name (or org/name)")
    if space:
        return Upload(repo_id, "space", Path(root), list(SPACE_FILES), list(SPACE_IGNORE))
    return Upload(repo_id, "model", Path(weights), list(MODEL_FILES), [])


def space_problems(root: Path, names: set[str]) -> list[str]:
    """A Space starts only if README.md's front matter names the SDK and an app file that is uploaded."""
    from huggingface_hub import metadata_load
    if "README.md" not in names:
        return [f"{root / 'README.md'} is missing; a Space needs its front matter (sdk, app_file)"]
    meta = metadata_load(root / "README.md") or {}
    out = []
    if meta.get("sdk") != "gradio":
        out.append(f"README.md front matter has sdk {meta.get('sdk')!r}, expected 'gradio'")
    if meta.get("app_file") not in names:
        out.append(f"README.md front matter names app_file {meta.get('app_file')!r}, which is not uploaded")
    return out


def push(upload: Upload, private: bool = False) -> str:
    """Create the repo if needed and upload; the token is HF_TOKEN or `hf auth login`'s, never a file here."""
    _check_can_push()
    from huggingface_hub import create_repo, upload_folder
    from huggingface_hub.errors import HfHubHTTPError
    try:
        create_repo(upload.repo_id, repo_type=upload.repo_type, private=private, exist_ok=True,
                    space_sdk="gradio" if upload.repo_type == "space" else None)
        upload_folder(repo_id=upload.repo_id, repo_type=upload.repo_type, folder_path=upload.folder,
                      allow_patterns=list(upload.allow), ignore_patterns=list(upload.ignore),  # it appends to them
                      commit_message=f"Upload {'app' if upload.repo_type == 'space' else 'weights'} "
                                     f"with python -m captcha push")
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise CaptchaError(f"pushing to {upload.url} failed: {e}") from None
    return upload.url


def _check_can_push() -> None:
    from huggingface_hub import constants, get_token
    if constants.is_offline_mode():
        raise CaptchaError("HF_HUB_OFFLINE=1 is set; unset it to push to the Hub")
    if get_token() is None:
        raise CaptchaError("not logged in to the Hugging Face Hub: set HF_TOKEN or run `hf auth login`")


def human_size(n: float) -> str:
    """Powers of 1000, as the Hub shows sizes."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}"
