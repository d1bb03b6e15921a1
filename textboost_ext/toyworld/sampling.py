"""How the toy base is sampled wherever it is measured or shown: DDIM, 25 steps, classifier-free guidance 2.

Guidance 2 is where the shipped base's held-out table is best (`benchmarks/toyworld_guidance_sweep.py`,
README "How good the shipped base is"): at 4, the scale the first (epsilon) base was measured at, this
v-prediction base over-saturates colours (orange drawn yellow) and fills in sketches. Kept free of torch so
the generation CLI can read it for its defaults without importing the toy world.
"""

SAMPLER = "ddim"
STEPS = 25
GUIDANCE = 2.0
