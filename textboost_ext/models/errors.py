"""Errors raised while loading a Stable Diffusion base: each names the input and says how to fix it."""

from __future__ import annotations


class BaseModelError(ValueError):
    """The base model could not be loaded; the message names the file/folder/key and the fix."""


class BaseModelNotFoundError(BaseModelError, FileNotFoundError):
    """The given path does not exist (and is not a Hugging Face Hub id either)."""


class HubDownloadError(BaseModelError, ConnectionError):
    """A Hub id could not be fetched (offline, unreachable, unknown repo or no access)."""


def hub_download_message(repo_id: str, reason: str = "") -> str:
    detail = f" [cause: {reason}]" if reason else ""
    return (
        f"could not download {repo_id!r} from the Hugging Face Hub (offline?). Download it first or point "
        "pretrained_model_name_or_path at a local diffusers folder or .safetensors/.ckpt file "
        f"(no local file or folder named {repo_id!r} exists either){detail}"
    )
