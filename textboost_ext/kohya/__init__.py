"""Host adapter for kohya-ss/sd-scripts: runs its ``train_network.py`` loop with our extension.

Nothing here imports sd-scripts at package import time; ``launch`` does, only when asked for.
"""
