"""Tiny random checkpoints of every image-generator family, written with ``save_pretrained`` the
way the real ones are (a diffusers pipeline folder, an ImageGPT folder, the token-* layout)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import genbench  # noqa: F401  (makes transformers importable next to the pinned torchvision)


def ddpm_pipeline(path: Path, *, size: int = 32, channels: int = 3, timesteps: int = 100,
                  variance: str = "fixed_small", prediction: str = "epsilon", classes: int | None = None) -> Path:
    """A DDPMPipeline (UNet2DModel + DDPMScheduler) of ``size`` x ``size`` x ``channels`` images."""
    import diffusers

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1,
                                 block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
                                 num_class_embeds=classes)
    sched = diffusers.DDPMScheduler(num_train_timesteps=timesteps, variance_type=variance, prediction_type=prediction,
                                    # DDPM's linear schedule scaled to T steps (improved-diffusion's rule)
                                    beta_start=1e-4 * 1000 / timesteps, beta_end=min(0.02 * 1000 / timesteps, 0.5))
    diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(path)
    return path


def dit_pipeline(path: Path, classes: int = 5) -> Path:
    """A class-conditional DiTPipeline: DiT (learned sigma) on a tiny AutoencoderKL; 16x16 RGB."""
    import diffusers

    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8),
                                  layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=16)
    dit = diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                          num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=classes)
    diffusers.DiTPipeline(transformer=dit, vae=vae,
                          scheduler=diffusers.DDIMScheduler(num_train_timesteps=100)).save_pretrained(path)
    return path


def imagegpt(path: Path, size: int = 8, clusters: int = 16) -> Path:
    """ImageGPTForCausalImageModeling over ``size`` x ``size`` pixels and its image processor."""
    import transformers

    torch.manual_seed(0)
    config = transformers.ImageGPTConfig(vocab_size=clusters + 1, n_positions=size * size, n_embd=32, n_layer=2,
                                         n_head=2)
    transformers.ImageGPTForCausalImageModeling(config).save_pretrained(path)
    palette = np.random.default_rng(0).uniform(-1, 1, (clusters, 3)).round(4)
    transformers.ImageGPTImageProcessor(clusters=palette, size={"height": size, "width": size}).save_pretrained(path)
    return path


def _vq(path: Path, codes: int, lookup: bool = False) -> None:
    """An 8x8 RGB <-> 4x4 codes VQModel; ``lookup``: aMUSEd's layout, whose decoder takes the
    code indices (``lookup_from_codebook``)."""
    import diffusers

    torch.manual_seed(0)
    diffusers.VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                      up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                      latent_channels=4, num_vq_embeddings=codes, norm_num_groups=4, sample_size=8,
                      vq_embed_dim=4, lookup_from_codebook=lookup).save_pretrained(path)


def token_ar(path: Path, *, codes: int = 16, classes: int | None = 3, lookup: bool = False) -> Path:
    """token-ar layout: VQ (8x8 RGB <-> 4x4 codes) + a Llama over codes, class tokens after them."""
    import transformers

    _vq(path / "vq", codes, lookup)
    extra = (classes + 1) if classes else 1  # class tokens and the null class, or a BOS token
    config = transformers.LlamaConfig(vocab_size=codes + extra, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=32)
    torch.manual_seed(1)
    transformers.LlamaForCausalLM(config).save_pretrained(path / "transformer")
    spec = {"grid": [4, 4], "codebook_size": codes}
    spec.update({"num_classes": classes, "class_token": codes, "null_class": classes} if classes
                else {"bos_token": codes})
    (path / "genbench.json").write_text(json.dumps(spec))
    return path


def token_masked(path: Path, *, codes: int = 16, classes: int | None = 3, lookup: bool = False) -> Path:
    """token-masked layout: VQ + a BERT masked LM over [class token] + codes, mask id after them."""
    import transformers

    _vq(path / "vq", codes, lookup)
    mask = codes + (classes + 1 if classes else 0)
    config = transformers.BertConfig(vocab_size=mask + 1, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, max_position_embeddings=32)
    torch.manual_seed(2)
    transformers.BertForMaskedLM(config).save_pretrained(path / "transformer")
    spec = {"grid": [4, 4], "codebook_size": codes, "mask_token": mask}
    if classes:
        spec.update({"num_classes": classes, "class_token": codes, "null_class": classes})
    (path / "genbench.json").write_text(json.dumps(spec))
    return path
