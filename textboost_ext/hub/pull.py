"""Download an adapter repo from the Hub into the store, verify it, and only then install it.

The snapshot lands in a hidden staging folder inside the store (``<root>/.pull-*``, same filesystem), is
checked with ``textboost_ext.export.verify.verify_file`` (the LoRA and each embedding), and is moved to ``<root>/<name>`` with one
rename. So the store never holds a half-downloaded or failing adapter: a failing verify raises
``VerifyFailedError`` (its message has the report table) and installs nothing; ``verify=False`` /
``--no_verify`` installs it anyway. An existing adapter is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path

from textboost_ext.hub.auth import resolve_token, scrub
from textboost_ext.hub.errors import AdapterExistsError, AdapterFormatError, AdapterNotFoundError, HubError, VerifyFailedError
from textboost_ext.hub.header import read_header
from textboost_ext.hub.lock import AdapterLock
from textboost_ext.hub.manifest import write_manifest
from textboost_ext.hub.push import check_repo_id
from textboost_ext.hub.staging import clean_pull_leftovers, recover_swap, swap_in
from textboost_ext.textsafe import clean
from textboost_ext.hub.store import PRIVATE_SUBDIRS, adapters_root, embedding_files, family_from_metadata, find_lora_file

logger = logging.getLogger(__name__)

# Training-only folders are never pushed by us, but a repo uploaded by hand might have them.
PULL_IGNORE_PATTERNS = [*(f"{d}/*" for d in PRIVATE_SUBDIRS), ".gitattributes"]
# The only file types an adapter needs; never a pickle (.bin/.pt/.ckpt/.pkl), whatever --no_verify says.
PULL_ALLOWED_SUFFIXES = (".safetensors", ".json", ".png", ".jpg", ".jpeg", ".webp", ".md", ".toml", ".txt")
DEFAULT_MAX_FILE_MB = 2048  # a text-encoder LoRA is at most a few hundred MB
MAX_FILES = 1000


def check_adapter_name(name: str) -> str:
    if not name or name.startswith(".") or "/" in name or os.sep in name or name in (".", ".."):
        raise ValueError(f"adapter name {name!r} must be a plain folder name (no '/', not starting with '.'); pass --name")
    return name


def pull_command(repo_id: str, revision: str | None, name: str | None, endpoint: str | None, overwrite: bool) -> str:
    parts = ["textboost-hub", "pull", repo_id]
    parts += ["--revision", revision] if revision else []
    parts += ["--name", name] if name else []
    parts += ["--endpoint", endpoint] if endpoint else []
    parts += ["--overwrite"] if overwrite else []
    return shlex.join(parts)


def pull_adapter(
    repo_id: str,
    root: str | Path | None = None,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    name: str | None = None,
    *,
    overwrite: bool = False,
    verify: bool = True,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
) -> Path:
    """Download ``repo_id`` into ``<root>/<name>`` (name defaults to the repo's name); return that folder.

    Only allowlisted file types are downloaded (``PULL_ALLOWED_SUFFIXES``), each at most ``max_file_mb``;
    a repo with a file name that could escape the folder is refused.
    """
    check_repo_id(repo_id)
    name = check_adapter_name(name or repo_id.split("/")[-1])
    root = adapters_root() if root is None else Path(root).absolute()
    target = root / name
    retry = pull_command(repo_id, revision, name if name != repo_id.split("/")[-1] else None, endpoint, overwrite)
    root.mkdir(parents=True, exist_ok=True)
    with AdapterLock(root, name, f"pulling {repo_id}"):
        clean_pull_leftovers(root)  # downloads of killed pulls
        recover_swap(root, name)
        if target.exists() and not overwrite:
            raise AdapterExistsError(f"{target} already exists; pull with --name OTHER_NAME or --overwrite to replace it")
        _pull_into(repo_id, root, target, name, revision, token, endpoint, retry, verify, int(max_file_mb * 1024**2))
    logger.info("pulled %s into %s", repo_id, target)
    return target


def _pull_into(repo_id: str, root: Path, target: Path, name: str, revision: str | None, token: str | None,
               endpoint: str | None, retry: str, verify: bool, max_bytes: int) -> None:
    wanted, skipped = _plan_files(repo_id, revision, token, endpoint, retry, max_bytes)
    for path in skipped:
        logger.warning("not downloading %s: only %s files are installed", clean(path), ", ".join(PULL_ALLOWED_SUFFIXES))
    # the pid in the name lets a later pull remove this folder if we are killed
    staging = Path(tempfile.mkdtemp(prefix=f".pull-{name}-{os.getpid()}-", dir=root))
    try:
        staged = _download(repo_id, staging, name, revision, token, endpoint, retry, wanted)
        _check_downloaded(staged, set(wanted), max_bytes, repo_id)
        try:
            lora_file = find_lora_file(staged)
        except AdapterNotFoundError:
            raise AdapterFormatError(
                f"{repo_id}: no LoRA .safetensors at the top level of the repo; it is not an adapter this tool can install"
            ) from None
        _check_files(lora_file, repo_id)  # even with --no_verify: headers only, nothing is loaded
        if verify:
            _verify(lora_file, repo_id, retry)
        write_manifest(staged)  # what was downloaded (and verified) is the complete adapter
        swap_in(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _plan_files(repo_id: str, revision: str | None, token: str | None, endpoint: str | None, retry: str,
                max_bytes: int) -> tuple[list[str], list[str]]:
    """(files to download, files left out) from the repo listing; refuse unsafe names and oversized files."""
    from huggingface_hub import HfApi

    secret = resolve_token(token)
    failure = None
    try:
        entries = [e for e in HfApi(endpoint=endpoint, token=secret).list_repo_tree(
            repo_id, revision=revision, recursive=True, repo_type="model") if hasattr(e, "size")]
    except Exception as err:  # noqa: BLE001 - every listing failure becomes one HubError
        failure = scrub(f"{type(err).__name__}: {err}", secret)
    if failure is not None:
        raise HubError(f"pull of {repo_id} failed while listing its files: {failure}\nNothing was installed. Retry with:\n  {retry}",
                       stage="listing", retry_command=retry)
    wanted, skipped = [], []
    for entry in entries:
        path = str(entry.path)
        if not _safe_repo_path(path):
            raise AdapterFormatError(f"{repo_id}: refusing a repo with the file name {clean(path)!r} (it could write outside "
                                     "the adapter folder); nothing was installed")
        if path == ".gitattributes" or path.split("/")[0] in PRIVATE_SUBDIRS:
            continue
        if not path.lower().endswith(PULL_ALLOWED_SUFFIXES):
            skipped.append(path)
            continue
        size = int(getattr(entry, "size", 0) or 0)
        if size > max_bytes:
            raise AdapterFormatError(
                f"{repo_id}: {clean(path)} is {size / 1024**2:.0f} MB, over the limit of {max_bytes / 1024**2:.0f} MB per file; "
                f"nothing was installed. If you trust it, raise the limit: {retry} --max_file_mb {size // 1024**2 + 1}"
            )
        wanted.append(path)
    if len(wanted) > MAX_FILES:
        raise AdapterFormatError(f"{repo_id}: {len(wanted)} files is not an adapter (at most {MAX_FILES}); nothing was installed")
    return wanted, skipped


def _safe_repo_path(path: str) -> bool:
    parts = path.split("/")
    return (bool(path) and not path.startswith("/") and "\\" not in path and ":" not in path
            and all(p not in ("", ".", "..") for p in parts) and clean(path) == path and len(path) < 512)


def _check_downloaded(staged: Path, wanted: set[str], max_bytes: int, repo_id: str) -> None:
    """What landed on disk is exactly what was asked for: regular files within the size limit."""
    for path in sorted(staged.rglob("*")):
        rel = path.relative_to(staged).as_posix()
        if path.is_symlink() or (not path.is_dir() and not path.is_file()):
            raise AdapterFormatError(f"{repo_id}: {clean(rel)} is not a regular file; nothing was installed")
        if path.is_file() and (rel not in wanted or path.stat().st_size > max_bytes):
            raise AdapterFormatError(f"{repo_id}: unexpected download {clean(rel)}; nothing was installed")


def _download(repo_id: str, staging: Path, name: str, revision: str | None, token: str | None, endpoint: str | None,
              retry: str, wanted: list[str]) -> Path:
    from huggingface_hub import snapshot_download

    secret = resolve_token(token)
    staged = staging / "download" / name  # own subfolder: a name like "hf-cache" cannot collide
    failure = None
    try:
        snapshot_download(
            repo_id,
            repo_type="model",
            revision=revision,
            local_dir=staged,
            cache_dir=staging / "hf-cache",  # keeps refs/locks out of the user's global cache
            token=secret,
            endpoint=endpoint,
            allow_patterns=[re.sub(r"([*?\[])", r"[\1]", path) for path in wanted] or ["nothing-to-download"],
            ignore_patterns=PULL_IGNORE_PATTERNS,
        )
    except Exception as err:  # noqa: BLE001 - every download failure becomes one HubError
        failure = scrub(f"{type(err).__name__}: {err}", secret)
    if failure is not None:  # raised outside the except block so the unscrubbed error is not chained
        raise HubError(
            f"pull of {repo_id} failed while downloading: {failure}\nNothing was installed. Retry with:\n  {retry}",
            stage="downloading", retry_command=retry,
        )
    shutil.rmtree(staged / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
    return staged


_LORA_PREFIXES = ("lora_te_", "lora_te1_", "lora_te2_", "text_encoder.", "text_encoder_2.", "bundle_emb.")


def _check_files(lora_file: Path, repo_id: str) -> None:
    """Every safetensors file is sound (header, shapes, offsets: ``check_safetensors_file``) and the LoRA file
    holds text-encoder LoRA keys only: what ``--no_verify`` still checks, reading headers only."""
    from textboost_ext.input_files import check_safetensors_file

    for path in sorted(lora_file.parent.rglob("*.safetensors")):
        try:
            check_safetensors_file(path)
        except ValueError as err:
            raise AdapterFormatError(f"{repo_id}: {clean(err)}; nothing was installed") from None
    odd = [name for name in read_header(lora_file).tensors if not name.startswith(_LORA_PREFIXES)]
    if odd:
        raise AdapterFormatError(f"{repo_id}: {lora_file.name} is not a text-encoder LoRA (keys such as "
                                 f"{clean(odd[0][:80])!r}); nothing was installed")


def _verify(lora_file: Path, repo_id: str, retry: str) -> None:
    """Run the export checklist on the LoRA and every embedding; raise with the failing reports' tables."""
    try:
        from textboost_ext.export.verify import verify_file
    except ImportError as err:
        raise HubError(
            f"cannot verify {repo_id}: textboost_ext.export.verify is not importable ({err}). "
            "Reinstall textboost-ext, or pull with --no_verify to install without checking.",
            stage="verify", retry_command=retry,
        ) from None
    files = [lora_file, *embedding_files(lora_file.parent)]
    # against the base the adapter records when it is a built-in one (the demo adapter's tiny sizes)
    header = read_header(lora_file)
    recorded = header.metadata.get("ss_sd_model_name", "")
    base = recorded if recorded.startswith("builtin:") else None
    family = family_from_metadata(header.metadata, list(header.tensors))
    arch = {"sd2v": "sd2"}.get(family or "", family)  # an embedding file has no metadata: the LoRA's family
    reports = [verify_file(lora_file, base=base), *(verify_file(path, arch=arch, base=base) for path in files[1:])]
    failed = [r for r in reports if not r.ok]
    if failed:
        tables = "\n\n".join(r.format_table() for r in failed)
        raise VerifyFailedError(
            f"{repo_id} failed verification, so it was not installed:\n{tables}\n"
            f"Pull with --no_verify to install it anyway: {retry} --no_verify",
            report=failed[0], retry_command=retry,
        )
