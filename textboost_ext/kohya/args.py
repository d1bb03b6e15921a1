"""TextBoost options on sd-scripts' command line and in its ``--config_file`` TOML.

Every field of :class:`~textboost_ext.config.schema.TextBoostConfig` becomes ``--<name>``, plus
``--extension``, ``--export_bundle``, ``--sd_scripts_dir`` (accepted, ignored: the launcher reads it) and
``--sdxl`` (sd-scripts picks SDXL by script; we pick it by this flag). sd-scripts' ``read_config_from_file``
flattens every TOML table into one namespace, so a ``[textboost]`` table works as-is. Those values arrive
raw (argparse does not convert values already in the namespace), so every TextBoost option is parsed
here, from text (CLI) or from its TOML type, with the same coercion and rules as our own TOML loader.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any

from textboost_ext.config.coerce import BadValue, coerce, split_optional, textboost_fields
from textboost_ext.config.errors import Problems
from textboost_ext.config.schema import TextBoostConfig
from textboost_ext.kohya.launch import flag_value

# sd-scripts defaults the optimizer to AdamW by leaving --optimizer_type empty; TextBoost's default:
DEFAULT_OPTIMIZER = "AdamW8bit"
LORA_NETWORK_MODULE = "networks.lora"
# our built-in host's module name; the same kohya LoRA layout, so a TOML written for it works here
BUILTIN_NETWORK_MODULE = "textboost_ext.network"


class TextBoostArgumentError(ValueError):
    """A TextBoost option, or an sd-scripts option that TextBoost cannot train with. Printed without traceback."""


def add_textboost_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the TextBoost options to sd-scripts' parser (``train_network.setup_parser()``)."""
    group = parser.add_argument_group("TextBoost (also accepted in a [textboost] table of --config_file)")
    defaults = TextBoostConfig()
    for name, hint in textboost_fields().items():
        base, _ = split_optional(hint)
        help_text = f"TextBoost {name} (default: {getattr(defaults, name)!r})"
        kwargs: dict[str, Any] = {"default": None, "type": str, "help": help_text}
        if base is bool:
            kwargs.update(nargs="?", const="true", metavar="true|false")
        elif typing.get_origin(base) is list:
            kwargs.update(nargs="+")
        _add(group, f"--{name}", **kwargs)
    _add(group, "--extension", type=str, default="textboost",
         help='registered extension that drives the run: "textboost" (default) or "none" for a plain text-encoder LoRA')
    _add(group, "--export_bundle", action="store_true",
         help="also write <name>_a1111_bundle.safetensors (LoRA + bundled embedding, A1111 1.7+ only)")
    _add(group, "--sd_scripts_dir", type=str, default=None, help="the sd-scripts checkout (read by the launcher)")
    try:
        group.add_argument("--sdxl", action="store_true",
                           help="train on an SDXL base with sd-scripts' SdxlNetworkTrainer (sd-scripts picks SDXL by script)")
    except argparse.ArgumentError:
        pass  # this checkout's parser already has --sdxl
    return parser


def _add(group: argparse._ArgumentGroup, flag: str, **kwargs: Any) -> None:
    try:
        group.add_argument(flag, **kwargs)
    except argparse.ArgumentError as err:  # sd-scripts grew an option of the same name
        raise RuntimeError(f"the TextBoost option {flag} clashes with an sd-scripts option of this checkout: {err}") from err


def textboost_config_from_args(args: argparse.Namespace) -> TextBoostConfig:
    """The ``[textboost]`` settings from sd-scripts' namespace (CLI text or raw TOML values), validated."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, hint in textboost_fields().items():
        raw = getattr(args, name, None)
        if raw is None:
            continue
        if typing.get_origin(split_optional(hint)[0]) is list and isinstance(raw, str):
            raw = [raw]  # a TOML string where a list is expected: `lora_targets = "q_proj"`
        try:
            values[name] = coerce(name, raw, hint, from_text=True)
        except BadValue as err:
            problems.append(f"--{name} / [textboost] {name}: {err}")
    if problems:
        raise TextBoostArgumentError("TextBoost options:\n  - " + "\n  - ".join(problems))
    config = TextBoostConfig(**values)
    _check_rules(config, str(getattr(args, "extension", None) or "textboost"))
    return config


def _check_rules(config: TextBoostConfig, extension: str) -> None:
    # The value rules of our own TOML loader ([textboost] part), so both hosts accept the same settings.
    from textboost_ext.config.validate import check_textboost  # the loader's own rule set for [textboost]

    report = Problems()
    check_textboost(types.SimpleNamespace(textboost=config, extension=extension), report)
    if report.errors:
        raise TextBoostArgumentError("TextBoost options:\n  - " + "\n  - ".join(report.errors))


# ---- choosing the SDXL trainer before the parser exists ----------------------------------------------
def wants_sdxl(argv: list[str]) -> bool:
    """True if ``--sdxl`` is on the command line or ``sdxl = true`` is in the ``--config_file`` TOML."""
    for arg in argv:
        if arg == "--sdxl":
            return True
        if arg.startswith("--sdxl="):
            return arg.split("=", 1)[1].strip().lower() in ("1", "true", "yes")
    config_file = flag_value(argv, "--config_file")
    if not config_file:
        return False
    path = Path(config_file if config_file.endswith(".toml") else config_file + ".toml")
    try:
        from textboost_ext.config.tomlio import tomllib

        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # sd-scripts reports a missing or broken file itself
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for table in (v for v in data.values() if isinstance(v, dict)):
        flat.update(table)  # the same flattening as read_config_from_file
    return flat.get("sdxl") is True


# ---- sd-scripts options TextBoost needs or cannot train with ------------------------------------------
def host_arg_problems(args: argparse.Namespace, config: TextBoostConfig, is_sdxl: bool) -> list[str]:
    """Combinations of sd-scripts options that cannot give a correct TextBoost run, each with its fix."""
    active = str(getattr(args, "extension", "textboost")) != "none"
    problems = []
    if getattr(args, "network_train_unet_only", False):
        problems.append("--network_train_unet_only: TextBoost trains the text encoder only; remove it")
    module = getattr(args, "network_module", None)
    if module not in (None, LORA_NETWORK_MODULE, BUILTIN_NETWORK_MODULE):
        problems.append(f"--network_module {module}: TextBoost under sd-scripts trains sd-scripts' own LoRA; "
                        f"use --network_module {LORA_NETWORK_MODULE} (or leave it out)")
    if active and (getattr(args, "cache_latents", False) or getattr(args, "cache_latents_to_disk", False)):
        problems.append("--cache_latents / --cache_latents_to_disk: TextBoost augments the pixels of every step "
                        "and needs the images; remove the caching options")
    if is_sdxl and getattr(args, "cache_text_encoder_outputs", False):
        problems.append("--cache_text_encoder_outputs: the text encoders are what TextBoost trains, so their "
                        "outputs cannot be cached; remove it")
    if active and config.timestep_sampling == "snr":
        for flag in ("min_snr_gamma", "debiased_estimation_loss"):
            if getattr(args, flag, None):
                problems.append(f"--{flag} with [textboost] timestep_sampling = \"snr\": the sampler already "
                                f"favours noisy timesteps and this would weight them a second time; remove "
                                f"--{flag} or set timestep_sampling = \"uniform\"")
    if (getattr(args, "save_model_as", None) or "safetensors") != "safetensors":
        problems.append(f"--save_model_as {args.save_model_as}: TextBoost writes safetensors files (what the "
                        "WebUIs and diffusers load, and what the embedding export reads); use safetensors")
    if not getattr(args, "output_dir", None):
        problems.append("--output_dir is required with sd-scripts (it has no adapter store; without it the run would "
                        "fail at its first save)")
    if active and config.kpl_mask_padding and getattr(args, "max_token_length", None):
        problems.append("--max_token_length with [textboost] kpl_mask_padding = true: the padding mask covers one "
                        "77-token chunk; remove one of them")
    return problems


def dataset_augmentation_problems(dataset_group: Any, config: TextBoostConfig, extension: str) -> list[str]:
    """sd-scripts' own flip/colour augmentation would change images without naming it in the caption, and
    its random or face crops would be ignored: TextBoost renders every view from the photo itself."""
    if extension == "none" or config.augment == "none":
        return []
    flagged = set()
    for dataset in getattr(dataset_group, "datasets", []) or []:
        for subset in getattr(dataset, "subsets", []) or []:
            flagged |= {key for key in ("flip_aug", "color_aug", "random_crop") if getattr(subset, key, False)}
            flagged |= {key for key in ("face_crop_aug_range",) if getattr(subset, key, None) is not None}
    problems = []
    named = sorted(flagged & {"flip_aug", "color_aug"})
    if named:
        keys = " / ".join(named)
        problems.append(f"{keys} in the dataset: TextBoost augments images itself and names each augmentation in the "
                        f"caption; sd-scripts' {keys} would not be named. Remove {keys} (or set [textboost] augment = \"none\")")
    crops = sorted(flagged & {"random_crop", "face_crop_aug_range"})
    if crops:
        keys = " / ".join(crops)
        problems.append(f"{keys} in the dataset: TextBoost renders each view from the whole photo (a centre crop "
                        f"unless its own crop or shift applies, which the caption names), so sd-scripts' {keys} would "
                        f"be ignored. Remove {keys}; for a non-square photo use --enable_bucket")
    return problems


def normalise_for_sd_scripts(args: argparse.Namespace) -> None:
    """Values our TOML templates write in a form sd-scripts does not parse: ``resolution = 512`` or
    ``[512, 768]`` (sd-scripts splits a string) become ``"512"`` / ``"512,768"``."""
    resolution = getattr(args, "resolution", None)
    if isinstance(resolution, bool):
        raise TextBoostArgumentError(f"resolution = {resolution!r}: expected a size like 512 or \"512,768\"")
    if isinstance(resolution, int):
        args.resolution = str(resolution)
    elif isinstance(resolution, (list, tuple)):
        args.resolution = ",".join(str(int(v)) for v in resolution)


def apply_host_defaults(args: argparse.Namespace) -> None:
    """Force a text-encoder-only run of sd-scripts' LoRA and default the optimizer to AdamW8bit."""
    args.network_train_text_encoder_only = True
    if getattr(args, "network_module", None) in (None, BUILTIN_NETWORK_MODULE):
        args.network_module = LORA_NETWORK_MODULE
    # "not set" in sd-scripts: an empty --optimizer_type and neither legacy alias flag
    chosen = [getattr(args, key, None) for key in ("optimizer_type", "use_8bit_adam", "use_lion_optimizer")]
    if not any(chosen):
        args.optimizer_type = DEFAULT_OPTIMIZER
