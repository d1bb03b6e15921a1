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
import shlex
import shutil
import tempfile
from pathlib import Path

from textboost_ext.hub.auth import resolve_token, scrub
from textboost_ext.hub.errors import AdapterExistsError, AdapterFormatError, AdapterNotFoundError, HubError, VerifyFailedError
from textboost_ext.hub.push import check_repo_id
from textboost_ext.hub.store import PRIVATE_SUBDIRS, adapters_root, embedding_files, find_lora_file

logger = logging.getLogger(__name__)

# Training-only folders are never pushed by us, but a repo uploaded by hand might have them.
PULL_IGNORE_PATTERNS = [*(f"{d}/*" for d in PRIVATE_SUBDIRS), ".gitattributes"]


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
) -> Path:
    """Download ``repo_id`` into ``<root>/<name>`` (name defaults to the repo's name); return that folder."""
    check_repo_id(repo_id)
    name = check_adapter_name(name or repo_id.split("/")[-1])
    root = adapters_root() if root is None else Path(root).absolute()
    target = root / name
    retry = pull_command(repo_id, revision, name if name != repo_id.split("/")[-1] else None, endpoint, overwrite)
    if target.exists() and not overwrite:
        raise AdapterExistsError(f"{target} already exists; pull with --name OTHER_NAME or --overwrite to replace it")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".pull-{name}-", dir=root))
    try:
        staged = _download(repo_id, staging, name, revision, token, endpoint, retry)
        try:
            lora_file = find_lora_file(staged)
        except AdapterNotFoundError:
            raise AdapterFormatError(
                f"{repo_id}: no LoRA .safetensors at the top level of the repo; it is not an adapter this tool can install"
            ) from None
        if verify:
            _verify(lora_file, repo_id, retry)
        _install(staged, target, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("pulled %s into %s", repo_id, target)
    return target


def _download(repo_id: str, staging: Path, name: str, revision: str | None, token: str | None, endpoint: str | None, retry: str) -> Path:
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
    reports = [verify_file(path) for path in [lora_file, *embedding_files(lora_file.parent)]]
    failed = [r for r in reports if not r.ok]
    if failed:
        tables = "\n\n".join(r.format_table() for r in failed)
        raise VerifyFailedError(
            f"{repo_id} failed verification, so it was not installed:\n{tables}\n"
            f"Pull with --no_verify to install it anyway: {retry} --no_verify",
            report=failed[0], retry_command=retry,
        )


def _install(staged: Path, target: Path, staging: Path) -> None:
    """Move ``staged`` to ``target`` (one rename); an existing target is moved aside first and restored on failure."""
    old = None
    if target.exists():
        old = staging / ".previous"
        os.replace(target, old)
    try:
        os.replace(staged, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
