"""Generate with an adapter and evaluate it: ``textboost-hub generate`` and ``textboost-hub eval``.

- ``adapters``: an adapter loaded the diffusers way (``load_lora_weights`` + ``load_textual_inversion``);
- ``pipeline``: the base on a device and precision, samplers; ``generate``: seeded, batched images;
- ``pnginfo``: the WebUI ``parameters`` chunk and our exact record; ``grid``: labelled contact sheets;
- ``prompts``: the shipped eval set and user prompt files; ``scorers``: CLIP-T, CLIP-I, DINO;
  ``toyworld_scorer``: the toy world's oracle; ``scorer_setup``: which prompts and scorers a run uses;
- ``run``: plan, generate what is missing, score; ``report`` / ``html_report``: eval.json, eval.html;
- ``cli`` / ``commands``: the two subcommands.
"""
