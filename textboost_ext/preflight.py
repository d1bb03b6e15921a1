"""Everything a run checks before any model loads, in ONE round: the entry script runs it for a run and
for ``--dry_run`` alike, so the dry run finds what the run would find, and a config with several problems
(dataset TOML, prompt file, image sizes, optimizer, precision, extension settings) gets one list instead
of one error per attempt. Checks that need an earlier result (images need the dataset) are skipped when
that result is missing; the others run regardless.

Also resolves what training will use (``config.resolve.finalize_config``): the returned config is the one
shown, saved and trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from textboost_ext.config import ConfigError, resolve_dataset, validate_config


@dataclass
class Preflight:
    dataset: Any = None
    items: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run does differently from what was written
    warnings: list[str] = field(default_factory=list)  # what may waste the run


def _messages(err: Exception) -> list[str]:
    return list(err.errors) if isinstance(err, ConfigError) else [str(err)]


def preflight(config: Any, extension: Any) -> Preflight:
    """Run every check; raise one :class:`ConfigError` listing all problems, else return what was found."""
    result, errors = Preflight(), []

    def attempt(check: Callable[[], None]) -> bool:
        try:
            check()
            return True
        except (ValueError, RuntimeError) as err:  # RuntimeError: an optimizer library that cannot load
            errors.extend(_messages(err))
            return False

    extension_ok = attempt(lambda: extension.assert_extra_args(config))

    def dataset() -> None:
        from textboost_ext.config.resolve import finalize_config

        result.dataset = resolve_dataset(config)
        result.notes += finalize_config(config, result.dataset)  # dataset TOML sizes, epochs -> steps, family
        validate_config(config)

    dataset_ok = attempt(dataset)

    def optimizer() -> None:
        from textboost_ext.host.optim import check_optimizer

        check_optimizer(config.optimizer_type, config.optimizer_args)

    def prompts() -> None:
        from textboost_ext.host.sampling import parse_prompts_file

        texts = [p.prompt for p in parse_prompts_file(config.sample_prompts)]
        if extension_ok:
            result.warnings += extension.check_sample_prompts(config, texts)

    def precision() -> None:
        from textboost_ext.host.precision import check_mixed_precision

        result.warnings += check_mixed_precision(config.mixed_precision)

    def images() -> None:
        from textboost_ext.host.dataset import collect_images
        from textboost_ext.host.trainer import resolution_wh

        result.items = collect_images(result.dataset, resolution_wh(result.dataset.resolution))
        if extension_ok:
            result.notes += extension.check_captions(config, result.items)

    def publishing() -> None:
        from textboost_ext.hub.publish import check_publish_config

        check_publish_config(config)

    attempt(optimizer)
    if config.sample_prompts:
        attempt(prompts)
    attempt(precision)
    if dataset_ok:
        attempt(images)
    if config.push_to_hub:
        attempt(publishing)
    if errors:
        raise ConfigError(errors)
    return result
