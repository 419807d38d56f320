"""Suites: one module per task. Names are declared lazily so listing them imports no torch."""
from genbench.registry import SUITES

SUITES.register("image_quality", lazy="genbench.suites.image_quality:ImageQuality")
SUITES.register("text_quality", lazy="genbench.suites.text_quality:TextQuality")
SUITES.register("likelihood", lazy="genbench.suites.likelihood:Likelihood")
SUITES.register("speed", lazy="genbench.suites.speed:Speed")
SUITES.register("tokenizer", lazy="genbench.suites.tokenizer:TokenizerReconstruction")
