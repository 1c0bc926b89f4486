"""Config skeletons for single-file checkpoints, generated from their tensors.

``from_single_file`` without ``config=`` asks the hub for the original
repository's configs, so a fully offline server must supply them. Rather than
ship one fixed config per architecture, the skeleton is derived from the
checkpoint's own tensor shapes (channels, levels, layers, context width), so
fine-tunes with unusual shapes and the tests' tiny four-level checkpoint load
through the same code as a stock SD1.5 file. What shapes cannot tell (head
counts, activation) follows each family's published configuration.

A single file carries no tokenizer: the real CLIP vocabulary (49408 tokens)
and the tests' byte-level one are made from shipped data (clip_vocab.py); any
other size is copied from a diffusers folder the registry found (or the
Hugging Face cache).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..clip_vocab import BYTE_VOCAB_SIZE, PAD_CLIP_L, PAD_OPEN_CLIP, write_tokenizer
from ..entries import Shapes

if TYPE_CHECKING:
    from .stable_diffusion import StableDiffusion

UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP_L = "cond_stage_model.transformer.text_model."
CLIP_L_XL = "conditioner.embedders.0.transformer.text_model."
OPEN_CLIP = "cond_stage_model.model."
OPEN_CLIP_XL = "conditioner.embedders.1.model."
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json")


class MissingTokenizer(Exception):
    """No local tokenizer matches the checkpoint's vocabulary."""


def _count(shapes: Shapes, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in shapes if (m := rx.match(k))})


def unet_config(shapes: Shapes, family: StableDiffusion, prediction: str | None = None) -> dict[str, Any]:
    conv_in = shapes[UNET + "input_blocks.0.0.weight"]
    levels = _count(shapes, re.escape(UNET) + r"input_blocks\.(\d+)\.0\.op\.weight") + 1
    resnets = _count(shapes, re.escape(UNET) + r"input_blocks\.(\d+)\.0\.in_layers\.0\.weight")
    layers = resnets // levels
    channels, attn, depth = [], [], []
    for i in range(levels):
        block = f"{UNET}input_blocks.{1 + i * (layers + 1)}."
        channels.append(shapes[block + "0.out_layers.3.weight"][0])
        has_attn = any(k.startswith(block + "1.") for k in shapes)
        attn.append(has_attn)
        depth.append(_count(shapes, re.escape(block) + r"1\.transformer_blocks\.(\d+)\.") if has_attn else 1)
    context = next(v[1] for k, v in shapes.items() if k.startswith(UNET) and k.endswith("attn2.to_k.weight"))
    proj_in = next(v for k, v in shapes.items() if k.startswith(UNET) and k.endswith("proj_in.weight"))
    real = conv_in[0] >= 320  # a production-size model, not a test model
    config: dict[str, Any] = {
        "_class_name": "UNet2DConditionModel",
        "in_channels": conv_in[1], "out_channels": shapes[UNET + "out.2.weight"][0],
        "block_out_channels": channels, "layers_per_block": layers, "cross_attention_dim": context,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "transformer_layers_per_block": depth if len(set(depth)) > 1 else depth[0], "use_linear_projection": len(proj_in) == 2,
        "sample_size": family.native_for(prediction) // family.vae_scale_factor if real else 8,
        "norm_num_groups": 32,
    }
    # SD1 configs count heads (8 everywhere); SD2 and SDXL use 64-wide heads.
    config["attention_head_dim"] = [max(1, c // 64) for c in channels] if family.wide_heads else 8
    if family.upcast_attention(prediction):
        config["upcast_attention"] = True  # as SD2.1-768 publishes it: its attention overflows in fp16
    if family.xl:
        label = shapes[UNET + "label_emb.0.0.weight"]
        pooled = shapes.get(OPEN_CLIP_XL + "text_projection", (0, 1280))[1]
        config.update(addition_embed_type="text_time", projection_class_embeddings_input_dim=label[1],
                      addition_time_embed_dim=(label[1] - pooled) // 6)
    return config


def vae_config(shapes: Shapes, family: StableDiffusion, prediction: str | None = None) -> dict[str, Any]:
    levels = _count(shapes, re.escape(VAE) + r"encoder\.down\.(\d+)\.block\.0\.conv1\.weight")
    layers = _count(shapes, re.escape(VAE) + r"encoder\.down\.0\.block\.(\d+)\.conv1\.weight")
    channels = [shapes[f"{VAE}encoder.down.{i}.block.{layers - 1}.conv2.weight"][0] for i in range(levels)]
    return {
        "_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3,
        "latent_channels": shapes[VAE + "quant_conv.weight"][0] // 2,
        "block_out_channels": channels, "layers_per_block": layers, "norm_num_groups": 32,
        "down_block_types": ["DownEncoderBlock2D"] * levels, "up_block_types": ["UpDecoderBlock2D"] * levels,
        "sample_size": family.native_for(prediction),
        "scaling_factor": family.vae_scaling,
        "force_upcast": family.vae_force_upcast,  # the SDXL VAE overflows in fp16
    }


def clip_config(shapes: Shapes, prefix: str, open_clip: bool = False, projection: bool = False) -> dict[str, Any]:
    if open_clip:  # OpenCLIP layout: resblocks, token_embedding at the top
        emb = shapes[prefix + "token_embedding.weight"]
        blocks = _count(shapes, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
        fc1 = shapes[prefix + "transformer.resblocks.0.mlp.c_fc.weight"]
        positions = shapes[prefix + "positional_embedding"][0]
        # SD2 uses the penultimate layer, which diffusers expresses as one layer fewer.
        layers = blocks if projection else blocks - 1
    else:
        emb = shapes[prefix + "embeddings.token_embedding.weight"]
        layers = _count(shapes, re.escape(prefix) + r"encoder\.layers\.(\d+)\.")
        fc1 = shapes[prefix + "encoder.layers.0.mlp.fc1.weight"]
        positions = shapes[prefix + "embeddings.position_embedding.weight"][0]
    vocab, hidden = emb
    heads = hidden // 64 if hidden % 64 == 0 and hidden >= 256 else max(1, hidden // 8)
    config: dict[str, Any] = {
        "architectures": ["CLIPTextModelWithProjection" if projection else "CLIPTextModel"],
        "model_type": "clip_text_model", "hidden_size": hidden, "intermediate_size": fc1[0],
        "num_hidden_layers": layers, "num_attention_heads": heads, "vocab_size": vocab,
        "max_position_embeddings": positions, "hidden_act": "gelu" if open_clip else "quick_gelu",
        "bos_token_id": vocab - 2, "eos_token_id": vocab - 1, "pad_token_id": 1 if vocab > BYTE_VOCAB_SIZE else vocab - 1,
    }
    if projection:
        config["projection_dim"] = shapes.get(prefix + "text_projection", (hidden, hidden))[1]
    return config


def scheduler_config(family: StableDiffusion, prediction: str | None = None) -> dict[str, Any]:
    return {
        "_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
        "prediction_type": prediction or family.prediction, "timestep_spacing": "leading",
    }


def write_skeleton(folder: Path, shapes: Shapes, family: StableDiffusion, pipeline_class: str,
                   find_tokenizer: Callable[[int, str], Path | None], prediction: str | None = None) -> Path:
    """Write model_index.json and every component's config (no weights) to ``folder``.
    ``prediction`` is the declared prediction type (None: the family's default)."""
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {
        "_class_name": pipeline_class, "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "EulerDiscreteScheduler"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
    }
    if family.xl:
        te1 = clip_config(shapes, CLIP_L_XL)
        te2 = clip_config(shapes, OPEN_CLIP_XL, open_clip=True, projection=True)
        index.update(text_encoder_2=["transformers", "CLIPTextModelWithProjection"], tokenizer_2=["transformers", "CLIPTokenizer"],
                     force_zeros_for_empty_prompt=True)
        encoders = {"text_encoder": te1, "text_encoder_2": te2}
    else:
        te1 = clip_config(shapes, OPEN_CLIP, open_clip=True) if family.open_clip else clip_config(shapes, CLIP_L)
        index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
        encoders = {"text_encoder": te1}
    _write(folder / "unet" / "config.json", unet_config(shapes, family, prediction))
    _write(folder / "vae" / "config.json", vae_config(shapes, family, prediction))
    _write(folder / "scheduler" / "scheduler_config.json", scheduler_config(family, prediction))
    for sub, config in encoders.items():
        _write(folder / sub / "config.json", config)
        tok_sub = sub.replace("text_encoder", "tokenizer")
        open_clip = config["hidden_act"] == "gelu"  # the OpenCLIP encoders (SD2, SDXL's second) pad with "!"
        _write_tokenizer(folder / tok_sub, config["vocab_size"], PAD_OPEN_CLIP if open_clip else PAD_CLIP_L,
                         lambda n, s=tok_sub: find_tokenizer(n, s))
    _write(folder / "model_index.json", index)  # last: its presence marks a complete skeleton
    return folder


def _write_tokenizer(dest: Path, vocab_size: int, pad: str, find: Callable[[int], Path | None]) -> None:
    if write_tokenizer(dest, vocab_size, pad):
        return
    source = find(vocab_size)
    if source is None:
        raise MissingTokenizer(
            f"no CLIP tokenizer with {vocab_size} tokens was found; a single-file checkpoint carries none "
            "(Paintwire ships the standard 49408-token one). Put a diffusers folder whose text encoder has "
            f"{vocab_size} tokens in a model folder: its tokenizer is used."
        )
    dest.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:  # only these: a cached CLIP repository also holds its weights
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)


def _write(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")
