#!/usr/bin/env python
"""Train a TextBoost adapter (kohya-style options). Wiring only; read it top to bottom.

    python train_network_textboost.py --config_file config_templates/demo.toml
    python train_network_textboost.py --config_file my.toml --learning_rate 1e-4 --dry_run
    python train_network_textboost.py --sd_scripts_dir ~/sd-scripts --config_file my.toml   # kohya's loop

1. parse the TOML + CLI (strict: unknown keys, wrong types and impossible values fail here)
2. pick the host: kohya sd-scripts' NetworkTrainer when asked for, else the built-in trainer
3. build the extension (``extension = "textboost"``) and let it check its settings
4. preflight: dataset, images, captions, prompts, optimizer, precision (all problems in one list); ``--dry_run`` stops here
5. train (the host calls the extension's hooks; it writes the LoRA, embeddings, sidecars)
6. write the model card; publish to the Hub if ``push_to_hub = true``
7. print where the adapter is and how to use it
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("textboost_ext.train")
DEBUG_ENV = "TEXTBOOST_DEBUG"


def main(argv: list[str] | None = None) -> int:
    """Run, turning every failure into a short message and a non-zero exit; ``--debug`` (or
    ``TEXTBOOST_DEBUG=1``) shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    try:
        return run(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence against a traceback
        if debug:
            raise
        from textboost_ext.textsafe import clean

        print(f"error: {clean(err)}" if isinstance(err, OSError) else
              f"error: {type(err).__name__}: {clean(err)}\n(unexpected: run again with --debug or {DEBUG_ENV}=1 to see "
              "the traceback, and please report it)", file=sys.stderr)
        return 1


def run(argv: list[str]) -> int:
    from textboost_ext.config import ConfigError, format_resolved_config, parse_args
    from textboost_ext.kohya.launch import sd_scripts_requested

    from textboost_ext.console import configure_logging

    # before anything imports bitsandbytes (its kernel-fetch warnings come at import); --quiet/--verbose
    configure_logging("verbose" if "--verbose" in argv else "quiet" if "--quiet" in argv else "info")
    # 2. kohya sd-scripts host (its own parser, its own loop, our extension)
    sd_scripts_dir = sd_scripts_requested(argv)
    if sd_scripts_dir is not None:
        from textboost_ext.kohya.launch import run_sd_scripts

        return run_sd_scripts(sd_scripts_dir, argv)

    try:
        # 1. config (keys, values, paths)
        config, run = parse_args(argv)
        # 3. extension; 4. everything checkable before a model loads, all problems in one list
        from textboost_ext.preflight import preflight
        from textboost_ext.registry import create_extension

        extension = create_extension(config.extension)
        checked = preflight(config, extension)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in checked.notes:
        log.info("note: %s", note)
    for warning in checked.warnings:
        log.warning("%s", warning)
    if run.show_captions:  # kohya's --debug_dataset habit: the captions as training draws them, then exit
        print("\n".join(extension.example_captions(checked.items, run.show_captions, config.seed)))
        return 0
    if run.dry_run:
        print(format_resolved_config(config, checked.dataset))
        print("example training captions:")
        for caption in extension.example_captions(checked.items, 5, config.seed):
            print(f"  {caption}")
        return 0

    # 5. train
    from textboost_ext.host import train
    from textboost_ext.host.optim import OptimizerUnavailableError
    from textboost_ext.host.output import OutputError
    from textboost_ext.hub.errors import AdapterStoreError

    from textboost_ext.console import quiet_third_party

    quiet_third_party(verbose=run.log_level == "verbose", import_now=True)  # their own switches, before models load
    from textboost_ext.host.heap import bound_heap_growth

    heap_note = bound_heap_growth()  # before models load: less peak memory for the same step
    if heap_note:
        log.info("%s", heap_note)
    try:
        result = train(config, extension, checked=True)  # the preflight showed its notes already
    except (ValueError, FileNotFoundError, OutputError, OptimizerUnavailableError, AdapterStoreError) as err:
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
