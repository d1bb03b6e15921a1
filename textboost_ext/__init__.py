"""textboost-ext: TextBoost (arXiv 2409.08248) one-shot personalization as a kohya-style plugin.

Public API (small on purpose):
- ``textboost_ext.config``: load and validate a training TOML (kohya option names).
- ``textboost_ext.hooks.TrainerExtension``: the hook base class hosts call.
- ``textboost_ext.registry``: explicit extension registration and discovery.
"""

__version__ = "0.1.0"
