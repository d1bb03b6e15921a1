"""The toy world: a pretrained tiny text-to-image base that makes one-shot personalization measurable on a CPU.

``world`` (what a scene is), ``render`` (scene -> pixels), ``captions`` (scene -> words), ``oracle`` (pixels ->
scene, the evaluator), ``models`` (the SD 1.x-layout components), ``pretrain_*`` (how the base is built, once),
``shipped`` (the committed weights and their record), ``subjects`` (the novel subjects and their prompts), ``sampling``/``generate`` (how the base is sampled),
``scoring``/``evaluate``/``report`` (what a trained adapter achieves), ``cli`` (``textboost-toyworld``).
"""
