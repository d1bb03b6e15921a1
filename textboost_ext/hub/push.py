"""Upload one adapter folder to a Hub model repo.

What goes up: the LoRA, embeddings, sidecars, README.md, training_config.toml and samples/ (an
allowlist of extensions); never ``state/``, ``logs/``, ``checkpoints/``, dotfiles or anything named like
a secret, and the whole upload is refused if any file contains the token. The folder is not modified,
except that README.md is written first when it is missing. A failure raises ``HubError`` with the
exact command that retries; pushing again updates the repo (unchanged files are skipped by the Hub).
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import tempfile
from pathlib import Path

from textboost_ext.hub.auth import HUB_TOKEN_PATTERN, resolve_token, scrub
from textboost_ext.hub.card import is_demo_adapter, write_model_card
from textboost_ext.hub.errors import HubError
from textboost_ext.hub.manifest import MANIFEST_NAME
from textboost_ext.hub.store import PRIVATE_SUBDIRS, read_adapter_folder, require_complete

logger = logging.getLogger(__name__)

UPLOAD_ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.md", "*.toml", "*.txt", "*.png", "*.jpg", "*.jpeg", "*.webp"]
UPLOAD_IGNORE_PATTERNS = [
    *(f"{d}/*" for d in PRIVATE_SUBDIRS),  # training state, TensorBoard logs, intermediate LoRAs
    ".*", "*/.*",  # dotfiles anywhere: .env, .netrc, .git-credentials, .cache, .huggingface
    "*.token", "*.env", "*.pem", "*.key", "*credentials*", "*secret*",
    MANIFEST_NAME,  # local bookkeeping of completeness; pull writes its own
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def check_repo_id(repo_id: str) -> str:
    """``owner/name`` as the Hub accepts it, else ValueError with the fix."""
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise ValueError(
            f"repo_id {repo_id!r} is not a Hub repo id: use USER/REPO (letters, digits, '-', '_', '.'), e.g. alice/mycorgi-textboost"
        )
    return repo_id


def upload_plan(adapter_dir: str | Path) -> tuple[list[str], list[str]]:
    """(files that will be uploaded, files that stay local), as paths relative to the folder."""
    from huggingface_hub.utils import filter_repo_objects
    from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

    folder = Path(adapter_dir)
    every = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    kept = list(filter_repo_objects(every, allow_patterns=UPLOAD_ALLOW_PATTERNS,
                                    ignore_patterns=UPLOAD_IGNORE_PATTERNS + DEFAULT_IGNORE_PATTERNS))
    return kept, [p for p in every if p not in set(kept)]


def find_secrets(adapter_dir: str | Path, files: list[str], token: str | None) -> list[str]:
    """Files among ``files`` that contain ``token`` or anything shaped like a Hub token."""
    pattern = re.compile(HUB_TOKEN_PATTERN.pattern.encode())
    needle = token.encode() if token else None
    hits = []
    for rel in files:
        data = (Path(adapter_dir) / rel).read_bytes()
        if (needle and needle in data) or pattern.search(data):
            hits.append(rel)
    return hits


# training_config.toml keys that hold local paths: uploaded as file names only (a home folder's name or a
# private folder layout is nobody's business; the file name still says what was used)
LOCAL_PATH_KEYS = ("pretrained_model_name_or_path", "vae", "dataset_config", "train_data_dir", "network_weights",
                   "output_dir", "adapters_dir", "resume", "sample_prompts", "logging_dir", "preservation_prompts")
HUB_ID_KEYS = ("pretrained_model_name_or_path", "vae")  # may be a Hub id (user/model): kept unless clearly local
_PATH_LINE = re.compile(r'^(?P<key>\w+) = "(?P<value>(?:[^"\\]|\\.)*)"\s*$')


def public_config_text(text: str) -> str:
    """``training_config.toml`` as uploaded: local paths reduced to their last component. Hub ids
    (``user/model``) and ``builtin:`` models are kept."""
    lines = []
    for line in text.splitlines():
        match = _PATH_LINE.match(line)
        if match and match["key"] in LOCAL_PATH_KEYS:
            value = match["value"]
            is_local = value.startswith(("/", "~", "./", "../", "\\")) or (len(value) > 2 and value[1] == ":") \
                or (match["key"] not in HUB_ID_KEYS and "/" in value)
            if is_local and not value.startswith("builtin:"):
                line = f'{match["key"]} = "{Path(value.replace(chr(92) * 2, "/")).name}"'
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def public_card_text(text: str, name: str, repo_id: str) -> str:
    """The card as uploaded: the placeholder repo id of a card written before the push names the real one."""
    return text.replace(f"<your-username>/{name}", repo_id)


def staged_upload(folder: Path, files: list[str], repo_id: str, name: str, staging: Path) -> Path:
    """Copies of ``files`` under ``staging`` with the card and the training config made public."""
    for rel in files:
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        source = folder / rel
        if rel == "training_config.toml":
            target.write_text(public_config_text(source.read_text(encoding="utf-8")), encoding="utf-8")
        elif rel == "README.md":
            target.write_text(public_card_text(source.read_text(encoding="utf-8"), name, repo_id), encoding="utf-8")
        else:
            shutil.copyfile(source, target)
    return staging


def retry_command(adapter_dir: Path, repo_id: str, private: bool, endpoint: str | None, revision: str | None) -> str:
    parts = ["textboost-hub", "push", str(adapter_dir), "--repo_id", repo_id]
    parts += ["--private"] if private else []
    parts += ["--endpoint", endpoint] if endpoint else []
    parts += ["--revision", revision] if revision else []
    return shlex.join(parts)


def push_adapter(
    adapter_dir: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
    *,
    regenerate_card: bool = False,
    commit_message: str | None = None,
    allow_demo: bool = False,
) -> str:
    """Create ``repo_id`` if needed and upload the adapter; return the commit URL.

    ``private`` applies when the repo is created; asking for private on an existing public repo fails
    (nothing is uploaded) rather than silently publishing.
    """
    info = read_adapter_folder(Path(adapter_dir))
    require_complete(info, "push")
    folder = info.folder
    check_repo_id(repo_id)
    retry = retry_command(folder, repo_id, private, endpoint, revision)
    if is_demo_adapter(info) and not allow_demo:
        raise HubError(
            f"{info.name} is a demo adapter (trained on {info.metadata.get('ss_sd_model_name')}, a tiny random-weight "
            "model): it loads into no real Stable Diffusion model. Publish it anyway with --allow_demo (its card says "
            "so and names no base model): " + retry + " --allow_demo",
            stage="check", retry_command=retry + " --allow_demo",
        )
    secret = resolve_token(token)
    if not secret:
        raise HubError(
            "no Hugging Face token: run `hf auth login` or set HF_TOKEN to a token with write access, then retry: " + retry,
            stage="auth", retry_command=retry,
        )
    if regenerate_card or not (folder / "README.md").is_file():
        write_model_card(folder, repo_id=repo_id)
    files, skipped = upload_plan(folder)
    leaking = find_secrets(folder, files, secret)
    if leaking:
        raise HubError(
            f"refusing to upload {folder}: {', '.join(leaking)} contain(s) a Hugging Face token. "
            "Remove it from those files (or delete them) and retry: " + retry,
            stage="check", retry_command=retry,
        )
    logger.info("pushing %s (%d files, %d kept local) to %s", folder, len(files), len(skipped), repo_id)

    from huggingface_hub import HfApi

    stage, failure = "connecting", None
    try:
        api = HfApi(endpoint=endpoint, token=secret)
        stage = "creating the repo"
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if private and api.repo_info(repo_id, repo_type="model").private is False:
            raise HubError(
                f"{repo_id} already exists and is public; --private only applies when creating a repo. Nothing was "
                "uploaded: make the repo private in its settings on the Hub, or choose another repo id.",
                stage=stage, retry_command=retry,
            )
        stage = "uploading files"
        staging_root = tempfile.TemporaryDirectory(prefix="textboost-push-")
        with staging_root as staging:  # the local folder is never changed; the copy is what goes up
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type="model",
                folder_path=staged_upload(folder, files, repo_id, info.name, Path(staging)),
                revision=revision,
                allow_patterns=list(UPLOAD_ALLOW_PATTERNS),
                ignore_patterns=list(UPLOAD_IGNORE_PATTERNS),
                commit_message=commit_message or f"Upload {info.name} with textboost-hub",
            )
    except HubError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of the Hub round trip becomes one clear HubError
        failure = scrub(f"{type(err).__name__}: {err}", secret)
    if failure is not None:  # raised outside the except block: the original (unscrubbed) error is not chained
        raise HubError(
            f"push of {folder} to {repo_id} failed while {stage}: {failure}\n"
            f"The local adapter folder was not changed. Retry with:\n  {retry}",
            stage=stage, retry_command=retry,
        )
    logger.info("pushed %s: %s", info.name, commit.commit_url)
    return commit.commit_url
