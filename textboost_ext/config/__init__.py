"""Training configuration: the typed schema, strict TOML + command-line loading, and datasets.

    cfg, run = parse_args(sys.argv[1:])          # or: cfg = load_config("x.toml", {"learning_rate": 1e-4})
    check_paths(cfg)                              # parse_args does this by default
    dataset = resolve_dataset(cfg)                # DatasetSpec: subsets, batch size, resolution
    (out_dir / "config.toml").write_text(config_to_toml(cfg))
"""

from __future__ import annotations

from textboost_ext.config.cli import RunOptions, build_arg_parser, parse_args
from textboost_ext.config.dataset import DatasetSpec, SubsetSpec, resolve_dataset
from textboost_ext.config.errors import ConfigError
from textboost_ext.config.load import config_to_toml, format_resolved_config, load_config
from textboost_ext.config.options import BUILTIN_MODELS, model_family, parse_optimizer_args
from textboost_ext.config.paths import check_paths
from textboost_ext.config.schema import TextBoostConfig, TrainConfig
from textboost_ext.config.validate import validate_config

__all__ = [
    "BUILTIN_MODELS", "ConfigError", "DatasetSpec", "RunOptions", "SubsetSpec", "TextBoostConfig", "TrainConfig",
    "build_arg_parser", "check_paths", "config_to_toml", "format_resolved_config", "load_config", "model_family",
    "parse_args", "parse_optimizer_args", "resolve_dataset", "validate_config",
]
