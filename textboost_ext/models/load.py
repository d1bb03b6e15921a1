"""``load_base_model``: one entry point for every way a Stable Diffusion base is given.

- ``builtin:tiny-sd1`` / ``tiny-sd2`` / ``tiny-sd2v`` / ``tiny-sdxl``: tiny models cached on disk,
  then loaded as a diffusers folder;
- a diffusers folder (``model_index.json``);
- an A1111/LDM single file (``.safetensors`` / ``.ckpt``);
- a Hugging Face Hub id ``owner/name`` that is not a local path.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from textboost_ext.method.tokens import fix_legacy_eos_pooling
from textboost_ext.models.builtin import builtin_model_dir, is_builtin
from textboost_ext.models.checkpoint_file import SINGLE_FILE_SUFFIXES
from textboost_ext.models.diffusers_folder import load_diffusers_model
from textboost_ext.models.errors import BaseModelError, BaseModelNotFoundError, HubDownloadError, hub_download_message
from textboost_ext.models.single_file import load_single_file_model
from textboost_ext.models.types import LoadedModel

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


def looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID.match(text)) and not text.lower().endswith(SINGLE_FILE_SUFFIXES) and ".." not in text


def load_base_model(
    path_or_id: str,
    *,
    v2: bool = False,
    v_parameterization: bool = False,
    sdxl: bool = False,
    vae: str | None = None,
    torch_dtype: torch.dtype = torch.float32,
    fix_eos_pooling: bool = True,
) -> LoadedModel:
    """Load a Stable Diffusion base for text-encoder training (all modules in eval mode, on CPU).

    ``fix_eos_pooling=False`` keeps the text encoders' released pooling setting (as diffusers loads
    them), for checks that must see the base the way users get it.

    ``v2`` / ``sdxl`` are kohya's flags: the family is detected anyway, and a flag that contradicts
    the checkpoint is an error (``v2=True`` turns a diffusers folder whose signals say SD 1.x into
    SD 2.x). ``v_parameterization=True`` makes the noise scheduler predict ``v_prediction``
    whatever the base says. ``vae`` replaces the base's VAE (a diffusers VAE folder or an LDM VAE file).
    """
    source = str(path_or_id)
    build_vae = None
    if vae is not None:  # check it before spending minutes on a large base
        from textboost_ext.models.vae_override import prepare_vae

        build_vae = prepare_vae(vae)
    options = dict(v2=v2, v_parameterization=v_parameterization, sdxl=sdxl, torch_dtype=torch_dtype)
    if is_builtin(source):
        model = load_diffusers_model(str(builtin_model_dir(source)), local_files_only=True, **options)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            model = load_diffusers_model(str(path), local_files_only=True, **options)
        elif path.is_file():
            if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
                raise BaseModelError(
                    f"{path}: unsupported file type {path.suffix!r}; a base model is a diffusers folder (with "
                    f"model_index.json) or a single {' / '.join(SINGLE_FILE_SUFFIXES)} file"
                )
            model = load_single_file_model(path, **options)
        elif looks_like_hub_id(source):
            model = _load_from_hub(source, **options)
        else:
            raise BaseModelNotFoundError(
                f"{source}: no such file or folder (and not a Hugging Face Hub id 'owner/name'); check the spelling "
                "and the working directory"
            )
    # Released configs say eos_token_id = 2, which pools at the highest token id: wrong once TextBoost adds
    # tokens (SDXL conditions on that pooled output). The sd-scripts host loads with its own code, so the
    # extension applies the same fix again there; it is a no-op on an already fixed encoder.
    for text_encoder, tokenizer in zip(model.text_encoders, model.tokenizers, strict=True):
        if fix_eos_pooling:
            fix_legacy_eos_pooling(text_encoder, tokenizer.eos_token_id)
    if build_vae is not None:
        model.vae = build_vae(model.family, torch_dtype)
        model.extra["vae"] = str(vae)
    model.source = source
    return model


def _load_from_hub(repo_id: str, **options: object) -> LoadedModel:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        return load_diffusers_model(repo_id, local_files_only=False, **options)  # type: ignore[arg-type]
    except BaseModelError:
        raise
    except (OSError, HfHubHTTPError, OfflineModeIsEnabled, ConnectionError, TimeoutError) as e:
        # transformers/diffusers wrap "offline", "no such repo" and "no access" all as OSError.
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HubDownloadError(hub_download_message(repo_id, reason[:300])) from e
