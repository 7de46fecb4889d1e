"""Tiny random-weight diffusers pipelines, built from configs, for tests, demos and benchmarks.

They have the real layouts — an SDXL pipeline (two CLIP text encoders, UNet with ``text_time`` conditioning,
AutoencoderKL, Euler-ancestral "trailing" scheduler as SDXL-Turbo) with an IP-Adapter file in the
``h94/IP-Adapter`` format, and a ``StableUnCLIPImg2ImgPipeline`` — but a few thousand parameters, so the whole
EEG → prior → embedding → image path runs in seconds on a CPU. They are saved with ``save_pretrained`` and loaded
back by path exactly as real weights are. The images they make are noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

_VOCAB_CHARS = "abcdefghijklmnopqrstuvwxyz"


def write_tiny_clip_tokenizer(directory: str | Path):
    """Write a tiny byte-level BPE vocabulary (letters only) and return a ``CLIPTokenizer`` built from it."""
    from transformers import CLIPTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"] + list(_VOCAB_CHARS) + [c + "</w>" for c in _VOCAB_CHARS]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(vocab_file=str(directory / "vocab.json"), merges_file=str(directory / "merges.txt"),
                         model_max_length=16, pad_token="!")


def _text_config(projection_dim: int = 8):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=2, hidden_size=8, intermediate_size=16,
                          num_attention_heads=2, num_hidden_layers=2, vocab_size=60, max_position_embeddings=16,
                          projection_dim=projection_dim, hidden_act="gelu")


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), latent_channels=4,
                         norm_num_groups=4, layers_per_block=1, sample_size=32)


def tiny_sdxl_pipeline(directory: str | Path, seed: int = 0, image_embed_dim: int = 16) -> Path:
    """Save a tiny SDXL pipeline to ``directory`` and a matching IP-Adapter to ``directory/ip_adapter``.

    The IP-Adapter file is ``ip_adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors`` (the layout of
    ``h94/IP-Adapter``) and maps ``image_embed_dim``-d image embeddings (1024 for the real ViT-H) into the UNet.
    """
    from diffusers import (
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    directory = Path(directory)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=4, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=32,
        cross_attention_dim=16, norm_num_groups=4)
    scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                timestep_spacing="trailing", steps_offset=1)
    tok = write_tiny_clip_tokenizer(directory / "_tok")
    pipe = StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=CLIPTextModel(_text_config()), text_encoder_2=CLIPTextModelWithProjection(
            _text_config(8)), tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=scheduler,
        image_encoder=None, feature_extractor=None)
    pipe.save_pretrained(directory)
    for f in (directory / "_tok").iterdir():
        f.unlink()
    (directory / "_tok").rmdir()
    write_tiny_ip_adapter(unet, directory / "ip_adapter" / "sdxl_models" / "ip-adapter_sdxl_vit-h.safetensors",
                          image_embed_dim=image_embed_dim, seed=seed + 1)
    return directory


def write_tiny_ip_adapter(unet, path: str | Path, image_embed_dim: int = 16, seed: int = 0) -> Path:
    """Write random IP-Adapter weights for ``unet`` in the original file format (``image_proj.*``,
    ``ip_adapter.{id}.to_k_ip/to_v_ip``, ids 1, 3, 5, … over the cross-attention processors)."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    blocks = list(unet.config.block_out_channels)
    state = {
        "image_proj.proj.weight": torch.randn(4 * cross, image_embed_dim, generator=g) * 0.2,
        "image_proj.proj.bias": torch.zeros(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = blocks[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(blocks))[int(name[len("up_blocks.")])]
        else:
            hidden = blocks[int(name[len("down_blocks.")])]
        for kind in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{key_id}.{kind}.weight"] = torch.randn(hidden, cross, generator=g) * 0.5
        key_id += 2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def tiny_unclip_pipeline(directory: str | Path, seed: int = 0, image_embed_dim: int = 16) -> Path:
    """Save a tiny ``StableUnCLIPImg2ImgPipeline`` (conditioned on ``image_embed_dim``-d image embeddings)."""
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        StableUnCLIPImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
        StableUnCLIPImageNormalizer,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    directory = Path(directory)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(8, 16), attention_head_dim=(2, 4),
        class_embed_type="projection", projection_class_embeddings_input_dim=image_embed_dim * 2,
        cross_attention_dim=8, layers_per_block=1, upcast_attention=True, use_linear_projection=True,
        norm_num_groups=4)
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=1, image_size=32,
        patch_size=8, projection_dim=image_embed_dim))
    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32), image_encoder=vision,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=image_embed_dim),
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=write_tiny_clip_tokenizer(directory / "_tok"), text_encoder=CLIPTextModel(_text_config()),
        unet=unet, scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                           prediction_type="v_prediction", set_alpha_to_one=False, steps_offset=1),
        vae=_vae())
    pipe.save_pretrained(directory)
    for f in (directory / "_tok").iterdir():
        f.unlink()
    (directory / "_tok").rmdir()
    return directory
