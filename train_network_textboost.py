#!/usr/bin/env python
"""Train a TextBoost adapter (kohya-style options). Wiring only; read it top to bottom.

    python train_network_textboost.py --config_file config_templates/demo.toml
    python train_network_textboost.py --config_file my.toml --learning_rate 1e-4 --dry_run
    python train_network_textboost.py --sd_scripts_dir ~/sd-scripts --config_file my.toml   # kohya's loop

1. parse the TOML + CLI (strict: unknown keys, wrong types and impossible values fail here)
2. pick the host: kohya sd-scripts' NetworkTrainer when asked for, else the built-in trainer
3. build the extension (``extension = "textboost"``) and let it check its settings
4. resolve the dataset; ``--dry_run`` stops here
5. train (the host calls the extension's hooks; it writes the LoRA, embeddings, sidecars)
6. write the model card; publish to the Hub if ``push_to_hub = true``
7. print where the adapter is and how to use it
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from textboost_ext.config import ConfigError, format_resolved_config, parse_args, resolve_dataset
    from textboost_ext.kohya.launch import sd_scripts_requested

    argv = sys.argv[1:] if argv is None else argv
    # 2. kohya sd-scripts host (its own parser, its own loop, our extension)
    sd_scripts_dir = sd_scripts_requested(argv)
    if sd_scripts_dir is not None:
        from textboost_ext.kohya.launch import run_sd_scripts

        return run_sd_scripts(sd_scripts_dir, argv)

    try:
        # 1. config
        config, run = parse_args(argv)
        # 3. extension
        from textboost_ext.registry import create_extension

        extension = create_extension(config.extension)
        extension.assert_extra_args(config)
        # 4. dataset; and a Hub upload that cannot work fails now, not after training
        dataset = resolve_dataset(config)
        # what training will use: the dataset TOML's batch/resolution, epochs as steps (shown, saved, trained)
        from textboost_ext.config.resolve import finalize_config

        for notice in finalize_config(config, dataset):
            print(f"note: {notice}", file=sys.stderr)
        from textboost_ext.config import validate_config

        validate_config(config)  # what finalize_config set (steps from epochs, the detected family) obeys the rules
        from textboost_ext.host.optim import check_optimizer

        check_optimizer(config.optimizer_type, config.optimizer_args)  # the library loads, its arguments exist
        if config.sample_prompts:  # a broken prompt file fails now, not at the first sample
            from textboost_ext.host.sampling import parse_prompts_file

            prompts = [p.prompt for p in parse_prompts_file(config.sample_prompts)]
            for notice in extension.check_sample_prompts(config, prompts):
                print(f"warning: {notice}", file=sys.stderr)
        # fp16 on a CPU fails now (not as a dtype traceback after the model loads); slow bf16 is a warning
        from textboost_ext.host.precision import check_mixed_precision

        for warning in check_mixed_precision(config.mixed_precision):
            print(f"warning: {warning}", file=sys.stderr)
        if config.push_to_hub:
            from textboost_ext.hub.publish import check_publish_config

            check_publish_config(config)
    except (ConfigError, ValueError, RuntimeError) as err:  # RuntimeError: an optimizer library that cannot load
        print(f"error: {err}", file=sys.stderr)
        return 2
    if run.dry_run or run.show_captions:
        # what the run checks before its first step, without a model: every image (readable, large enough),
        # the captions (caption_mode), the sample prompts; then example captions as training draws them
        from textboost_ext.host.dataset import collect_images
        from textboost_ext.host.trainer import resolution_wh

        try:
            items = collect_images(dataset, resolution_wh(dataset.resolution))
            notices = extension.check_captions(config, items)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if run.show_captions:
            print("\n".join(extension.example_captions(items, run.show_captions, config.seed)))
            return 0
        print(format_resolved_config(config, dataset))
        for notice in notices:
            print(f"note: {notice}")
        print("example training captions:")
        for caption in extension.example_captions(items, 5, config.seed):
            print(f"  {caption}")
        return 0

    # 5. train
    from textboost_ext.host import train
    from textboost_ext.host.optim import OptimizerUnavailableError
    from textboost_ext.host.output import OutputError

    try:
        result = train(config, extension)
    except (ValueError, FileNotFoundError, OutputError, OptimizerUnavailableError) as err:
        # bad input found once files are opened: a message naming the file/key and the fix, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2

    # 6. model card, then the Hub
    from textboost_ext.hub.card import write_model_card

    write_model_card(result.adapter_dir)
    if config.push_to_hub:
        from textboost_ext.hub.errors import HubError
        from textboost_ext.hub.publish import publish_after_training

        try:
            url = publish_after_training(result.adapter_dir, config.hub_repo_id, config.hub_private)
            print(f"Published: {url}")
        except HubError as err:  # the adapter is safe locally; the message says how to retry
            print(f"error: {err}", file=sys.stderr)
            return 1

    # 7. where it is, how to use it
    from textboost_ext.hub.usage import usage_text

    print(usage_text(result.adapter_dir, result.lora_path, extension.trigger_phrase()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
