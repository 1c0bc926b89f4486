"""Configs for single-file ControlNets and image encoders, from their tensor shapes.

A ControlNet .safetensors file carries no config.json, and asking a hub for one is
not an option offline. Its widths, levels and layers are in its tensor shapes;
the few numbers that shapes cannot tell (attention heads, the time-embedding
width of SDXL's extra conditioning) must match the checkpoint it guides, so
they are taken from that checkpoint's UNet.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..families.sd_configs import _count
from ..models import Shapes

EMBED = "controlnet_cond_embedding."


def is_original_layout(keys: Any) -> bool:
    """The original (LDM) ControlNet layout: input_blocks, zero_convs, input_hint_block."""
    return not any(k == "time_embedding.linear_1.weight" for k in keys)


def original_layers_per_block(shapes: Shapes) -> int:
    """Resnets per level of an original-layout ControlNet (what diffusers' converter needs)."""
    prefix = next((k[: -len("input_hint_block.0.weight")] for k in shapes if k.endswith("input_hint_block.0.weight")), "")
    levels = _count(shapes, re.escape(prefix) + r"input_blocks\.(\d+)\.0\.op\.weight") + 1
    resnets = _count(shapes, re.escape(prefix) + r"input_blocks\.(\d+)\.0\.in_layers\.0\.weight")
    return max(1, resnets // levels)


def controlnet_config(shapes: Shapes, unet: Mapping[str, Any]) -> dict[str, Any]:
    """A ControlNetModel (or ControlNetUnionModel) config for diffusers-layout ``shapes``,
    guiding a checkpoint whose UNet config is ``unet``."""
    levels = _count(shapes, r"down_blocks\.(\d+)\.resnets\.0\.conv1\.weight")
    layers = _count(shapes, r"down_blocks\.0\.resnets\.(\d+)\.conv1\.weight")
    channels = [shapes[f"down_blocks.{i}.resnets.0.conv2.weight"][0] for i in range(levels)]
    attn = [any(k.startswith(f"down_blocks.{i}.attentions.") for k in shapes) for i in range(levels)]
    depth = [_count(shapes, rf"down_blocks\.{i}\.attentions\.0\.transformer_blocks\.(\d+)\.") if a else 1 for i, a in enumerate(attn)]
    cond = shapes[EMBED + "conv_in.weight"]
    pairs = _count(shapes, re.escape(EMBED) + r"blocks\.(\d+)\.weight") // 2
    embedding = [cond[0]] + [shapes[f"{EMBED}blocks.{2 * j + 1}.weight"][0] for j in range(pairs)]
    proj_in = next((v for k, v in shapes.items() if k.endswith("proj_in.weight")), (0, 0))
    context = next((v[1] for k, v in shapes.items() if k.endswith("attn2.to_k.weight")), unet.get("cross_attention_dim"))
    same_widths = list(unet.get("block_out_channels", ())) == channels
    config: dict[str, Any] = {
        "in_channels": shapes["conv_in.weight"][1], "conditioning_channels": cond[1],
        "conditioning_embedding_out_channels": embedding, "block_out_channels": channels, "layers_per_block": layers,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "cross_attention_dim": context, "transformer_layers_per_block": depth if len(set(depth)) > 1 else depth[0],
        "use_linear_projection": len(proj_in) == 2,
        "mid_block_type": "UNetMidBlock2DCrossAttn" if any(k.startswith("mid_block.attentions.") for k in shapes) else "UNetMidBlock2D",
        # Heads do not show in shapes: the checkpoint's own where the widths are its, else 64-wide heads.
        "attention_head_dim": unet.get("attention_head_dim") if same_widths else [max(1, c // 64) for c in channels],
        "norm_num_groups": unet.get("norm_num_groups", 32),
    }
    if "add_embedding.linear_1.weight" in shapes:
        config.update(addition_embed_type="text_time", projection_class_embeddings_input_dim=shapes["add_embedding.linear_1.weight"][1],
                      addition_time_embed_dim=unet.get("addition_time_embed_dim") or 256)
    if "task_embedding" in shapes:  # a union ControlNet
        config.update(num_control_type=shapes["task_embedding"][0], num_trans_channel=shapes["task_embedding"][1],
                      num_trans_layer=_count(shapes, r"transformer_layes\.(\d+)\."),
                      num_proj_channel=shapes.get("spatial_ch_projs.weight", (shapes["task_embedding"][1],))[0])
    return config


def image_encoder_config(shapes: Shapes) -> dict[str, Any]:
    """A CLIPVisionConfig (as a dict) for a transformers-layout CLIP vision model file."""
    patch = shapes["vision_model.embeddings.patch_embedding.weight"]  # (hidden, 3, p, p)
    positions = shapes["vision_model.embeddings.position_embedding.weight"][0]
    hidden = patch[0]
    side = round((positions - 1) ** 0.5) * patch[2]
    # Heads do not show in shapes: ViT-H/14 and ViT-bigG/14 (the IP-Adapter encoders) have 16,
    # ViT-L/14 has 16 too; small test models use 8-wide heads.
    heads = 16 if hidden >= 1024 else max(1, hidden // 64) if hidden >= 256 else max(1, hidden // 8)
    return {
        "hidden_size": hidden, "intermediate_size": shapes["vision_model.encoder.layers.0.mlp.fc1.weight"][0],
        "num_hidden_layers": _count(shapes, r"vision_model\.encoder\.layers\.(\d+)\."), "num_attention_heads": heads,
        "patch_size": patch[2], "image_size": side, "num_channels": patch[1],
        "projection_dim": shapes["visual_projection.weight"][0], "hidden_act": "gelu",
    }


def flux_controlnet_config(shapes: Shapes, transformer_config: Mapping[str, Any]) -> dict[str, Any]:
    """FluxControlNetModel's arguments for a diffusers-named single file. Only the rotary
    embedding's split of a head is not in the shapes: it is the checkpoint transformer's."""
    inner, in_channels = shapes["x_embedder.weight"]
    head = shapes["transformer_blocks.0.attn.norm_q.weight"][0]
    mode = shapes.get("controlnet_mode_embedder.weight")
    return dict(
        patch_size=1, in_channels=in_channels, attention_head_dim=head, num_attention_heads=inner // head,
        num_layers=_count(shapes, r"transformer_blocks\.(\d+)\.attn\.to_q\.weight"),
        num_single_layers=_count(shapes, r"single_transformer_blocks\.(\d+)\.attn\.to_q\.weight"),
        joint_attention_dim=shapes["context_embedder.weight"][1],
        pooled_projection_dim=shapes["time_text_embed.text_embedder.linear_1.weight"][1],
        guidance_embeds=any(k.startswith("time_text_embed.guidance_embedder.") for k in shapes),
        axes_dims_rope=list(transformer_config.get("axes_dims_rope", (16, 56, 56))),
        num_mode=mode[0] if mode else None,
    )
