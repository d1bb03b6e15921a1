"""Value rules for a typed :class:`TrainConfig`: ranges, choices, and combinations that cannot work.

Everything here runs before any model loads and needs no file system. Choice fields are case
insensitive and normalised to their canonical spelling (``adamw8bit`` -> ``AdamW8bit``), so the host
can compare with ``==``. Path existence is :func:`textboost_ext.config.paths.check_paths`.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import fields
from importlib.metadata import entry_points

from textboost_ext.config.errors import Problems, did_you_mean, show_value
from textboost_ext.config.options import (
    AUGMENT_MODES,
    AUGMENTS,
    CAPTION_MODES,
    BUILTIN_MODELS,
    BUILTIN_PREFIX,
    FAMILY_FLAGS,
    KPL_TYPES,
    LOG_WITH,
    LR_SCHEDULERS,
    MIXED_PRECISIONS,
    NUM_TRAIN_TIMESTEPS,
    OPTIMIZERS,
    SAMPLERS,
    SAVE_PRECISIONS,
    TIMESTEP_SAMPLINGS,
    is_custom_optimizer,
    lora_target_problems,
    model_family,
    parse_optimizer_args,
)
from textboost_ext.config.schema import TextBoostConfig, TrainConfig
from textboost_ext.method.caption_templates import TEMPLATE_SETS, is_template_set_name, named_augmentation
from textboost_ext.method.token_names import TOKEN_NAME_PATTERN, suggest_token_name, vocabulary_conflict
from textboost_ext.models.tokenizer import clip_vocab_and_merges  # the shipped CLIP vocabulary, no torch

_HUB_REPO_RE = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
_OUTPUT_NAME_RE = re.compile(r"^[\w.-]+$")


def validate_config(cfg: TrainConfig, problems: Problems | None = None) -> TrainConfig:
    """Normalise choice spellings in place and check every rule.

    With ``problems`` given, errors are added to it (the loader collects file errors there too);
    without, a :class:`ConfigError` listing all of them is raised.
    """
    report = problems if problems is not None else Problems()
    _check_model(cfg, report)
    _check_data(cfg, report)
    _check_network(cfg, report)
    _check_optimisation(cfg, report)
    _check_output(cfg, report)
    _check_sampling_logging_hub(cfg, report)
    check_textboost(cfg, report)
    _check_magnitudes(cfg, report)
    _check_magnitudes(cfg.textboost, report)
    if problems is None:
        report.raise_if_any()
    return cfg


# Upper bounds far beyond any sensible run: a value past them is a typo (an extra zero, 1e9 for 1e-4) that
# would otherwise surface as a diverged run or an out-of-memory crash after the model has loaded.
_MAXIMUM = {
    "learning_rate": (1.0, "a learning rate above 1 diverges at once; the paper uses 5e-5"),
    "text_encoder_lr": (1.0, "a learning rate above 1 diverges at once"),
    "emb_learning_rate": (1.0, "a learning rate above 1 diverges at once; the paper uses 1e-3"),
    "network_dim": (1024, "a LoRA rank above the encoder's width (768-1280) adds nothing; the paper uses 4"),
    "network_alpha": (65536.0, "alpha scales the LoRA by alpha / rank; use about the rank"),
    "train_batch_size": (4096, "each image of a batch is held in memory at once"),
    "gradient_accumulation_steps": (65536, "one optimizer step would take that many batches"),
    "max_train_steps": (100_000_000, "TextBoost needs about 250"),
    "max_data_loader_n_workers": (256, "each worker is a process"),
    "max_grad_norm": (1e6, "use 0 to switch clipping off"),
}


def _check_magnitudes(obj: object, report: Problems) -> None:
    """Every number finite (TOML allows inf and nan), and within the bounds above."""
    import math

    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, float) and not math.isfinite(item):
                report.at(f.name, f"{f.name} = {item} must be a finite number")
                break
            if isinstance(item, (int, float)) and not isinstance(item, bool) and f.name in _MAXIMUM:
                limit, why = _MAXIMUM[f.name]
                if item > limit:
                    report.at(f.name, f"{f.name} = {item:g} is absurdly large (at most {limit:g}: {why})")
                    break


def _choice(obj: object, key: str, choices: tuple[str, ...], report: Problems,
            aliases: dict[str, str] | None = None) -> None:
    value = getattr(obj, key)
    if value is None:
        return
    lowered = {c.lower(): c for c in choices}
    lowered.update(aliases or {})
    canonical = lowered.get(str(value).lower())
    if canonical is None:
        report.at(key, f"{key} = {show_value(value)} is not supported{did_you_mean(str(value), choices)}; "
                       f"choose one of: {', '.join(choices)}")
    else:
        setattr(obj, key, canonical)


def _positive(obj: object, key: str, report: Problems, *, allow_zero: bool = False) -> None:
    value = getattr(obj, key)
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        report.at(key, f"{key} = {value} must be {'>= 0' if allow_zero else '> 0'}")


def _probability(obj: object, key: str, report: Problems) -> None:
    value = getattr(obj, key)
    if not 0.0 <= value <= 1.0:
        report.at(key, f"{key} = {value} is a probability and must be between 0 and 1")


def _check_model(cfg: TrainConfig, report: Problems) -> None:
    name = cfg.pretrained_model_name_or_path
    if not name:
        report.at("pretrained_model_name_or_path", "pretrained_model_name_or_path is required: a .safetensors/.ckpt "
                  "file, a diffusers folder, or builtin:tiny-sd1 for the offline demo model")
    elif name.startswith(BUILTIN_PREFIX):
        family = BUILTIN_MODELS.get(name)
        if family is None:
            report.at("pretrained_model_name_or_path", f"unknown built-in model {name!r}"
                      f"{did_you_mean(name, BUILTIN_MODELS)}; available: {', '.join(BUILTIN_MODELS)}")
        elif family != model_family(cfg) and not (cfg.v2 and cfg.sdxl):
            report.at("pretrained_model_name_or_path", f"{name} is a {family} model but the flags say "
                      f"{model_family(cfg)}; set {FAMILY_FLAGS[family]}")
    if cfg.v2 and cfg.sdxl:
        report.at("sdxl", "v2 and sdxl are both true; a model is either SD 2.x (v2) or SDXL (sdxl)")
    if cfg.clip_skip is not None:
        if cfg.clip_skip < 1:
            report.at("clip_skip", f"clip_skip = {cfg.clip_skip} must be >= 1 (1 = last layer, 2 = penultimate)")
        elif cfg.sdxl:
            report.at("clip_skip", "clip_skip is not used for SDXL (it always conditions on the penultimate "
                      "layers); remove it")
    valid_extensions = _available_extensions()
    if cfg.extension not in valid_extensions:
        report.at("extension", f"extension = {cfg.extension!r} is not registered"
                  f"{did_you_mean(cfg.extension, valid_extensions)}; available: {', '.join(valid_extensions)}")


def _available_extensions() -> list[str]:
    # Without importing textboost_ext.registry (it pulls in torch through the hook API): its entry-point
    # group, plus whatever was registered in code (which means the registry is already imported).
    names = {"none", "textboost"} | {ep.name for ep in entry_points(group="textboost_ext.extensions")}
    registry = sys.modules.get("textboost_ext.registry")
    if registry is not None:
        names.update(registry.available_extensions())
    return sorted(names)


def _check_data(cfg: TrainConfig, report: Problems) -> None:
    if cfg.dataset_config and cfg.train_data_dir:
        report.at(("dataset_config", "train_data_dir"), "dataset_config and train_data_dir are both set; use one "
                  "(a dataset TOML, or a folder of <repeats>_<class tokens> subfolders)")
    elif not cfg.dataset_config and not cfg.train_data_dir:
        report.at(("dataset_config", "train_data_dir"), "no training images: set train_data_dir (a folder holding "
                  "<repeats>_<class tokens> subfolders, e.g. 1_dog/) or dataset_config (a kohya dataset TOML)")
    if not cfg.caption_extension.startswith(".") or len(cfg.caption_extension) < 2:
        report.at("caption_extension", f"caption_extension = {cfg.caption_extension!r} must start with a dot, "
                  "e.g. \".txt\"")
    _positive(cfg, "max_data_loader_n_workers", report, allow_zero=True)


# kohya's networks.lora is accepted: this trainer's LoRA writes exactly that format (its files say so)
NETWORK_MODULES = ("textboost_ext.network", "networks.lora")


def _check_network(cfg: TrainConfig, report: Problems) -> None:
    if cfg.network_module not in NETWORK_MODULES:
        report.at("network_module", f"network_module = {cfg.network_module!r}: this trainer builds its own "
                  "text-encoder LoRA; set network_module = \"textboost_ext.network\" or kohya's \"networks.lora\" "
                  "(both mean it: its files are networks.lora files)")
    _positive(cfg, "network_dim", report)
    _positive(cfg, "network_alpha", report)
    unet_only = "network_train_unet_only = true: UNet LoRA is not supported; TextBoost trains the text encoder only"
    if cfg.network_train_unet_only:
        report.at("network_train_unet_only", unet_only + " (remove the key)")
    if not cfg.network_train_text_encoder_only:
        report.at("network_train_text_encoder_only", "network_train_text_encoder_only = false: UNet LoRA is not "
                  "supported; TextBoost trains the text encoder only (remove the key)")
    if cfg.unet_lr is not None:
        report.at("unet_lr", "unet_lr is set but UNet LoRA is not supported; TextBoost trains the text encoder only "
                  "(remove unet_lr; use learning_rate or text_encoder_lr)")
    if cfg.network_weights is not None and not cfg.network_weights.endswith(".safetensors"):
        report.at("network_weights", f"network_weights = {cfg.network_weights!r} must be a .safetensors LoRA file")
    if cfg.network_weights is not None and cfg.resume is not None:
        report.at("network_weights", "network_weights (start from trained LoRA weights) and resume (continue a saved "
                  "training state) are both set; use one")


def _check_optimisation(cfg: TrainConfig, report: Problems) -> None:
    _positive(cfg, "learning_rate", report)
    _positive(cfg, "text_encoder_lr", report)
    if not is_custom_optimizer(cfg.optimizer_type):
        _choice(cfg, "optimizer_type", OPTIMIZERS, report)
    if cfg.optimizer_type in OPTIMIZERS or is_custom_optimizer(cfg.optimizer_type):
        try:
            parse_optimizer_args(cfg.optimizer_type, cfg.optimizer_args)
        except ValueError as exc:
            report.at(("optimizer_args", "optimizer_type"), str(exc))
    _choice(cfg, "lr_scheduler", LR_SCHEDULERS, report)
    _positive(cfg, "lr_warmup_steps", report, allow_zero=True)
    _positive(cfg, "lr_scheduler_num_cycles", report)
    _positive(cfg, "lr_scheduler_power", report)
    if cfg.lr_warmup_steps > 0 and cfg.lr_scheduler == "constant":
        report.at(("lr_warmup_steps", "lr_scheduler"), "lr_warmup_steps is set but lr_scheduler = \"constant\" has no "
                  "warmup; use lr_scheduler = \"constant_with_warmup\"")
    if cfg.lr_warmup_steps >= cfg.max_train_steps > 0:
        report.at(("lr_warmup_steps", "max_train_steps"), f"lr_warmup_steps = {cfg.lr_warmup_steps} must be less than "
                  f"max_train_steps = {cfg.max_train_steps}")
    for key in ("max_train_steps", "train_batch_size", "gradient_accumulation_steps", "max_train_epochs",
                "save_every_n_epochs", "sample_every_n_epochs"):
        _positive(cfg, key, report)
    for epochs, steps in (("save_every_n_epochs", "save_every_n_steps"), ("sample_every_n_epochs", "sample_every_n_steps")):
        if getattr(cfg, epochs) is not None and getattr(cfg, steps) is not None:
            report.at((epochs, steps), f"{epochs} and {steps} are both set; use one")
    _positive(cfg, "max_grad_norm", report, allow_zero=True)
    if not 0 <= cfg.seed < 2**32:
        report.at("seed", f"seed = {cfg.seed} must be between 0 and 2**32 - 1")
    _choice(cfg, "mixed_precision", MIXED_PRECISIONS, report)
    if not 0 <= cfg.min_timestep < NUM_TRAIN_TIMESTEPS:
        report.at("min_timestep", f"min_timestep = {cfg.min_timestep} must be in [0, {NUM_TRAIN_TIMESTEPS - 1}]")
    elif not 0 < cfg.max_timestep <= NUM_TRAIN_TIMESTEPS:
        report.at("max_timestep", f"max_timestep = {cfg.max_timestep} must be in [1, {NUM_TRAIN_TIMESTEPS}]")
    elif cfg.min_timestep >= cfg.max_timestep:
        report.at(("min_timestep", "max_timestep"), f"min_timestep = {cfg.min_timestep} must be less than "
                  f"max_timestep = {cfg.max_timestep} (timesteps are drawn from [min_timestep, max_timestep))")


def _check_output(cfg: TrainConfig, report: Problems) -> None:
    name = cfg.output_name
    if name.endswith(".safetensors"):
        report.at("output_name", f"output_name = {name!r} must not carry the extension; use {name[:-12]!r}")
    elif not _OUTPUT_NAME_RE.match(name) or name.startswith("."):
        report.at("output_name", f"output_name = {show_value(name)} must be a file stem of letters, digits, '_', '-' "
                  "or '.' (it names the .safetensors file and the A1111 <lora:NAME:1> alias)")
    if cfg.save_model_as != "safetensors":
        report.at("save_model_as", f"save_model_as = {cfg.save_model_as!r} is not supported; only \"safetensors\" "
                  "(pickled .ckpt/.pt files can run code when loaded)")
    _choice(cfg, "save_precision", SAVE_PRECISIONS, report, aliases={"fp32": "float"})
    _positive(cfg, "save_every_n_steps", report)
    _positive(cfg, "save_last_n_steps", report)
    if cfg.save_last_n_steps is not None and cfg.save_every_n_steps is None and cfg.save_every_n_epochs is None:
        report.at("save_last_n_steps", "save_last_n_steps needs save_every_n_steps (it keeps the periodic saves "
                  "of the last N steps)")


def _check_sampling_logging_hub(cfg: TrainConfig, report: Problems) -> None:
    _positive(cfg, "sample_every_n_steps", report)
    if cfg.sample_prompts is None:
        for key in ("sample_every_n_steps", "sample_every_n_epochs", "sample_at_first"):
            if getattr(cfg, key):
                report.at((key, "sample_prompts"), f"{key} is set but sample_prompts is not; add sample_prompts = "
                          "\"prompts.txt\" (one prompt per line, kohya --n/--w/--h/--s/--l/--d options)")
    elif not cfg.sample_prompts.endswith((".txt", ".toml", ".json")):
        report.at("sample_prompts", f"sample_prompts = {cfg.sample_prompts!r} must be a kohya prompt file: .txt (one "
                  "prompt per line with --n/--w/--h/--s/--l/--d/--ss options), .toml or .json")
    _choice(cfg, "sample_sampler", SAMPLERS, report)
    if cfg.log_with is None:
        cfg.log_with = "none"  # the same meaning; a string survives a TOML round trip (TOML has no null)
    _choice(cfg, "log_with", LOG_WITH, report)
    for tracker in {"tensorboard": ["tensorboard"], "wandb": ["wandb"], "all": ["tensorboard", "wandb"]}.get(cfg.log_with, []):
        # accelerate silently drops a tracker whose package is missing: the run would log nothing
        if importlib.util.find_spec(tracker) is None:
            report.at("log_with", f"log_with = {cfg.log_with!r} needs the {tracker!r} package, which is not "
                      f"installed; pip install {tracker}, or choose log_with = \"tensorboard\" or \"none\"")
    if cfg.push_to_hub and not cfg.hub_repo_id:
        report.at("push_to_hub", "push_to_hub = true needs hub_repo_id = \"your-name/your-adapter\"")
    if cfg.hub_repo_id is not None and not _HUB_REPO_RE.match(cfg.hub_repo_id):
        report.at("hub_repo_id", f"hub_repo_id = {show_value(cfg.hub_repo_id)} is not a Hub repo id like "
                  "\"owner/name\"")


def check_textboost(cfg: TrainConfig, report: Problems) -> None:
    tb = cfg.textboost
    if cfg.extension == "none":
        # A plain text-encoder LoRA reads only lora_targets from [textboost]; anything else would be ignored.
        ignored = [f.name for f in fields(TextBoostConfig)
                   if f.name != "lora_targets" and getattr(tb, f.name) != getattr(TextBoostConfig(), f.name)]
        if ignored:
            report.at(ignored[0], f"extension = \"none\" trains a plain LoRA, so these [textboost] settings would have "
                      f"no effect: {', '.join(ignored)}; remove them or set extension = \"textboost\"")
    elif cfg.extension == "textboost":
        for key in ("placeholder_token", "initializer"):
            if not getattr(tb, key):
                example = "\"mycorgi\"" if key == "placeholder_token" else "\"corgi dog\""
                report.at(key, f"[textboost] {key} is required, e.g. {key} = {example}")
    token = tb.placeholder_token
    if token and not TOKEN_NAME_PATTERN.match(token):
        report.at("placeholder_token", f"placeholder_token = {show_value(token)} must be letters and digits "
                  "('_' or '-' allowed inside) so that it works as an A1111/Forge embedding name, e.g. \"mycorgi\"")
    elif token and vocabulary_conflict(token, vocab := clip_vocab_and_merges()[0]):
        report.at("placeholder_token", f"placeholder_token = {show_value(token)} is already a word of the CLIP "
                  f"vocabulary: as an embedding name it would hijack every use of it; pick a made-up name such as "
                  f"{suggest_token_name(token, vocab)!r}")
    if token and tb.class_noun and token.lower() == tb.class_noun.lower():
        report.at("placeholder_token", f"placeholder_token must differ from class_noun ({tb.class_noun!r}); "
                  "a real word as the token hijacks every use of that word")
    _check_templates(tb.caption_templates, report)
    _check_lora_targets(tb.lora_targets, report)
    _positive(tb, "emb_learning_rate", report)
    _positive(tb, "kpl_weight", report, allow_zero=True)
    _choice(tb, "kpl_type", KPL_TYPES, report)
    for key in ("kpl_empty_p", "kpl_class_p", "augment_p", "augment_color_p"):
        _probability(tb, key, report)
    if tb.kpl_empty_p + tb.kpl_class_p > 1.0:
        report.at("kpl_empty_p", f"kpl_empty_p + kpl_class_p = {tb.kpl_empty_p + tb.kpl_class_p} must be <= 1")
    if tb.preservation_prompts is not None and not tb.preservation_prompts.endswith((".txt", ".jsonl")):
        report.at("preservation_prompts", f"preservation_prompts = {tb.preservation_prompts!r} must be a .txt (one "
                  "prompt per line) or .jsonl file")
    _choice(tb, "timestep_sampling", TIMESTEP_SAMPLINGS, report)
    _choice(tb, "augment", AUGMENTS, report)
    _choice(tb, "augment_mode", AUGMENT_MODES, report)
    _choice(tb, "caption_mode", CAPTION_MODES, report)


def _check_templates(templates: list[str], report: Problems) -> None:
    if is_template_set_name(templates):
        return  # a named set ("textual_inversion"); used without its augmentation-naming templates
    if not templates:
        report.at("caption_templates", "caption_templates must not be empty (e.g. [\"{}\", \"a photo of a {}\"]) "
                  f"or the name of a template set ({', '.join(TEMPLATE_SETS)})")
    for template in templates:
        try:
            ok = template.count("{}") == 1 and template.format("x") is not None
        except (IndexError, KeyError, ValueError):
            ok = False
        if not ok:
            report.at("caption_templates", f"caption_templates: {template!r} must contain exactly one {{}} (where the "
                      f"placeholder goes) and no other braces, or be the name of a template set ({', '.join(TEMPLATE_SETS)})")
        elif (named := named_augmentation(template)) is not None:
            report.at("caption_templates", f"caption_templates: {template!r} says {named[1]!r}, which names the "
                      f"{named[0]} augmentation on every view, applied or not; TextBoost names each applied "
                      "augmentation itself, so remove the word from the template")


def _check_lora_targets(targets: list[str], report: Problems) -> None:
    for message in lora_target_problems(targets):
        report.at("lora_targets", message)
