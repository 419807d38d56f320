"""Adapters: one module per model family, each behind the common interface.

Built-in names are declared here as lazy import strings so that `genbench list adapters`
imports no model code. Third-party adapters register through the ``genbench.adapters``
entry-point group (``name = "package.module:Factory"``).
"""
from genbench.registry import ADAPTERS, EXTRACTORS
from genbench.adapters.zoo import TRAINERS

# Reference models trained on the offline data (see adapters/cards/).
ADAPTERS.register("ar-digits", lazy="genbench.adapters.autoregressive:ARDigits")
ADAPTERS.register("ar-kjv", lazy="genbench.adapters.autoregressive:ARText")
ADAPTERS.register("masked-digits", lazy="genbench.adapters.mdlm:MaskedDigits")
ADAPTERS.register("masked-kjv", lazy="genbench.adapters.mdlm:MaskedText")
ADAPTERS.register("diffusion-digits", lazy="genbench.adapters.diffusion:DiffusionDigits")
ADAPTERS.register("vq-digits", lazy="genbench.adapters.vq:VQDigits")

# Real checkpoints, loaded with from_pretrained from a local directory (NAME:PATH) or the hub.
ADAPTERS.register("hf-causal-lm", lazy="genbench.adapters.hf:HFCausalLM")
ADAPTERS.register("hf-masked-diffusion-lm", lazy="genbench.adapters.hf_mdlm:HFMaskedDiffusionLM")
ADAPTERS.register("diffusers", lazy="genbench.adapters.diffusers_pipeline:DiffusersPipeline")
ADAPTERS.register("hf-imagegpt", lazy="genbench.adapters.imagegpt:ImageGPT")
ADAPTERS.register("token-ar", lazy="genbench.adapters.token_models:TokenAR")
ADAPTERS.register("token-masked", lazy="genbench.adapters.token_models:TokenMasked")
ADAPTERS.register("diffusers-vq", lazy="genbench.adapters.diffusers_tokenizers:DiffusersVQ")
ADAPTERS.register("diffusers-vae", lazy="genbench.adapters.diffusers_tokenizers:DiffusersVAE")

EXTRACTORS.register("inception", lazy="genbench.features.extractor_inception:InceptionExtractor")
EXTRACTORS.register("torchscript", lazy="genbench.features.extractor_torchscript:TorchScriptExtractor")
EXTRACTORS.register("clip", lazy="genbench.features.extractor_clip:ClipExtractor")
EXTRACTORS.register("dinov2", lazy="genbench.features.extractor_dinov2:Dinov2Extractor")
EXTRACTORS.register("digits-classifier", lazy="genbench.adapters.classifier:DigitsClassifierExtractor")

TRAINERS.register("digits-classifier", lazy="genbench.adapters.classifier:train_digits_classifier")
TRAINERS.register("ar-digits", lazy="genbench.adapters.autoregressive:train_ar_digits")
TRAINERS.register("ar-kjv", lazy="genbench.adapters.autoregressive:train_ar_kjv")
TRAINERS.register("masked-digits", lazy="genbench.adapters.mdlm:train_masked_digits")
TRAINERS.register("masked-kjv", lazy="genbench.adapters.mdlm:train_masked_kjv")
TRAINERS.register("diffusion-digits", lazy="genbench.adapters.diffusion:train_diffusion_digits")
TRAINERS.register("vq-digits", lazy="genbench.adapters.vq:train_vq_digits")
