"""Flux files as people keep them, read from tensor names and shapes alone.

Black Forest Labs publish each part on its own: the transformer (``flux1-dev.safetensors``,
BFL naming: ``double_blocks.0.img_attn.qkv.weight`` ...), the autoencoder
(``ae.safetensors``, the original autoencoder naming) and, through ComfyUI, the text
encoders in transformers' naming (``clip_l``, ``t5xxl``, ``qwen_3_4b``). Some downloads
put everything in one "all-in-one" file under prefixes (``model.diffusion_model.``,
``text_encoders.clip_l.transformer.``, ``vae.``); quantised transformers come as GGUF.

This module says what a file holds (``roles``: each part and the prefix its tensors
start with), which checkpoint kind a transformer is, what else it needs, and the
diffusers configs of every part, derived from the shapes as sd_configs.py does for
Stable Diffusion: nothing is downloaded. How the tensors tell (see docs/models.md):

- Flux.2 has ``single_stream_modulation``; Flux.1 has per-block modulation and biases.
- Flux.1 without ``guidance_in`` is schnell; an ``img_in`` 384 wide is Fill (64 latent
  inputs + 64 of the masked image + 256 of the mask); 64 wide is dev, Krea or Kontext,
  which have the same tensors: Kontext is told by its file name (``kontext`` in it) or a
  sidecar. 128 wide (Canny, Depth) is not served.
- Klein has no guidance embedder (Flux.2 dev has one and is not served); distilled and
  base Klein have the same tensors: a file name with ``base`` in it is the base model.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..clip_vocab import write_tokenizer
from ..entries import Shapes
from .sd_configs import clip_config

# Roles of the parts of a Flux model (entries.Part.role).
TRANSFORMER, CLIP_L, T5, QWEN3, FLUX_VAE, FLUX2_VAE = "transformer", "clip-l", "t5", "qwen3", "flux-vae", "flux2-vae"
SD_VAE = "sd-vae"  # a 4-channel Stable Diffusion VAE: never a Flux part, named when it is the only VAE beside one
VAE_ROLES = (FLUX_VAE, FLUX2_VAE, SD_VAE)
# Kinds whose files have the same tensors: a file that the tensors make the first may be declared any of them.
SAME_TENSORS = {"flux": ("flux", "flux-kontext"), "flux2-klein": ("flux2-klein", "flux2-klein-base")}

# The tensor that anchors each role: the text before it in a key is the part's prefix.
_ANCHORS = (
    (TRANSFORMER, "img_in.weight"),
    (CLIP_L, "text_model.embeddings.token_embedding.weight"),
    (T5, "encoder.block.0.layer.0.SelfAttention.q.weight"),
    (QWEN3, "model.embed_tokens.weight"),
    ("vae", "decoder.conv_in.weight"),
)
_FLUX1_KEY = "double_blocks.0.img_attn.norm.key_norm.scale"
_FLUX2_KEY = "single_stream_modulation.lin.weight"
_FINAL = "final_layer.linear.weight"

# Readable names, usual file names and the ComfyUI folder of each part, for the sentences
# that say what is missing.
@dataclass(frozen=True)
class PartInfo:
    label: str
    file: str
    folder: str


PARTS = {
    CLIP_L: PartInfo("the CLIP-L text encoder", "clip_l.safetensors", "text_encoders"),
    T5: PartInfo("the T5-XXL text encoder", "t5xxl_fp16.safetensors", "text_encoders"),
    QWEN3: PartInfo("the Qwen3 text encoder", "qwen_3_4b.safetensors", "text_encoders"),
    FLUX_VAE: PartInfo("the Flux.1 VAE", "ae.safetensors", "vae"),
    FLUX2_VAE: PartInfo("the Flux.2 VAE", "flux2-vae.safetensors", "vae"),
}
TOKENIZER_SUFFIX = ".tokenizer"  # t5xxl_fp16.safetensors -> t5xxl_fp16.tokenizer/ beside it
# A diffusers folder of the family that gives a transformer file all its other parts (Part.path: the folder).
PIPELINE = "pipeline"
# Where a diffusers folder keeps each part, and the config key that says its width (latent channels for a VAE).
FOLDER_PARTS = {CLIP_L: ("text_encoder", "hidden_size"), T5: ("text_encoder_2", "d_model"), QWEN3: ("text_encoder", "hidden_size"),
                FLUX_VAE: ("vae", "latent_channels"), FLUX2_VAE: ("vae", "latent_channels")}
VAE_CHANNELS = {FLUX_VAE: 16, FLUX2_VAE: 32}


def roles(shapes: Shapes) -> dict[str, str]:
    """The parts a file holds and the prefix of each: {"transformer": "model.diffusion_model.", ...}.
    VAEs are named by their latent channels (16: Flux.1, 32 with latent statistics: Flux.2, 4: SD)."""
    found: dict[str, str] = {}
    for key in shapes:
        for role, anchor in _ANCHORS:
            if key.endswith(anchor) and (key == anchor or key[-len(anchor) - 1] == "."):
                prefix = key[: -len(anchor)]
                if role == "vae":
                    role = _vae_role(shapes, prefix)
                elif role == TRANSFORMER and (generation(shapes, prefix) is None or prefix + _FINAL not in shapes):
                    continue  # a Flux ControlNet (XLabs) has the blocks but no final layer
                if role and role not in found:
                    found[role] = prefix
    return found


def _vae_role(shapes: Shapes, prefix: str) -> str | None:
    channels = shapes[prefix + "decoder.conv_in.weight"][1]
    if channels == 16 and prefix + "quant_conv.weight" not in shapes:
        return FLUX_VAE
    if channels == 32 and prefix + "bn.running_mean" in shapes:
        return FLUX2_VAE
    return SD_VAE if channels == 4 else None


def generation(shapes: Shapes, prefix: str = "") -> int | None:
    """1 for a Flux.1 transformer, 2 for Flux.2 (checked first: Flux.2 has Flux.1's key too), else None."""
    if prefix + _FLUX2_KEY in shapes:
        return 2
    return 1 if prefix + _FLUX1_KEY in shapes else None


def sub_shapes(shapes: Shapes, prefix: str) -> Shapes:
    return {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}


def transformer_kind(shapes: Shapes) -> str | None:
    """The checkpoint kind of a file holding a Flux transformer, by its shapes alone
    (dev, not Kontext; distilled Klein, not base: see ``named_kind``); None: none this server serves."""
    prefix = roles(shapes).get(TRANSFORMER)
    if prefix is None:
        return None
    t = sub_shapes(shapes, prefix)
    guided = "guidance_in.in_layer.weight" in t
    if generation(t) == 2:
        return None if guided else "flux2-klein"  # Flux.2 dev (guided, Mistral encoder) is not served
    width = t["img_in.weight"][1]
    if width == 384:
        return "flux-fill"
    if width != 64:
        return None  # Canny / Depth (control image concatenated): no pipeline here
    return "flux" if guided else "flux-schnell"


def named_kind(kind: str, path: Path) -> str:
    """What the file name adds to a kind the tensors cannot tell: "kontext" in a Flux.1 dev
    file's name makes it Kontext, "base" in a Klein file's name the base model."""
    name = path.name.lower()
    if kind == "flux" and "kontext" in name:
        return "flux-kontext"
    if kind == "flux2-klein" and re.search(r"(^|[^a-z])base([^a-z]|$)", name):
        return "flux2-klein-base"
    return kind


def scaled_fp8_reason(name: str, shapes: Shapes) -> str:
    """The sentence for a "scaled" fp8 file ("" for any other): its weights must be multiplied by
    per-tensor scales (``scale_weight``, ``weight_scale``) that neither diffusers' converters nor
    the text encoders read, so loading it as it is would give wrong weights silently."""
    key = next((k for k in shapes if k == "scaled_fp8" or k.endswith((".scale_weight", ".weight_scale"))), None)
    if key is None:
        return ""
    return (f"{name} is a \"scaled\" fp8 file (its weights come with scale factors such as {key}), which this server "
            "does not load: use a plain fp8, fp16 or bf16 file.")


# --- what a transformer needs, matched by width ------------------------------------------------


@dataclass(frozen=True)
class Need:
    role: str
    width: int | None  # the hidden size the part must have (None: any)


def needs(shapes: Shapes) -> tuple[Need, ...]:
    """The parts a Flux transformer needs beside it, with the widths its tensors read."""
    t = sub_shapes(shapes, roles(shapes)[TRANSFORMER])
    if generation(t) == 2:
        return (Need(QWEN3, t["txt_in.weight"][1] // 3), Need(FLUX2_VAE, None))  # three Qwen3 layers stacked
    return (Need(CLIP_L, t["vector_in.in_layer.weight"][1]), Need(T5, t["txt_in.weight"][1]), Need(FLUX_VAE, None))


def part_width(role: str, shapes: Shapes, prefix: str) -> int | None:
    """The hidden size of a text encoder part (what ``Need.width`` is compared with)."""
    anchor = dict(_ANCHORS).get(role)
    return None if anchor is None else shapes[prefix + anchor][1]  # (rows, hidden) for each anchor


def vocab_rows(role: str, shapes: Shapes, prefix: str) -> int:
    """The rows of a text encoder's token embedding (its tokenizer may have fewer: T5 pads to 32128)."""
    key = {CLIP_L: "text_model.embeddings.token_embedding.weight", T5: "shared.weight", QWEN3: "model.embed_tokens.weight"}[role]
    if prefix + key not in shapes and role == T5:
        key = "encoder.embed_tokens.weight"
    return shapes[prefix + key][0]


# --- diffusers configs from the shapes ---------------------------------------------------------


def _count(shapes: Shapes, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in shapes if (m := rx.match(k))})


def transformer_config(t: Shapes) -> dict[str, Any]:
    """The diffusers config of a Flux transformer in BFL naming (prefix removed)."""
    inner, in_channels = t["img_in.weight"]
    head = t["double_blocks.0.img_attn.norm.query_norm.scale"][0]
    common = dict(
        patch_size=1, in_channels=in_channels, num_layers=_count(t, r"double_blocks\.(\d+)\."),
        num_single_layers=_count(t, r"single_blocks\.(\d+)\."), attention_head_dim=head, num_attention_heads=inner // head,
        joint_attention_dim=t["txt_in.weight"][1], guidance_embeds="guidance_in.in_layer.weight" in t,
    )
    if generation(t) == 2:
        mlp = t["double_blocks.0.img_mlp.0.weight"][0] // 2  # gate and value fused
        return {"_class_name": "Flux2Transformer2DModel", **common, "timestep_guidance_channels": t["time_in.in_layer.weight"][1],
                "mlp_ratio": mlp / inner, "axes_dims_rope": [head // 4] * 4}  # BFL's (32, 32, 32, 32) for 128-wide heads
    # BFL's rope axes are (16, 56, 56) for 128-wide heads: an eighth (at least 4) for the index, the rest halved.
    first = max(4, head // 8)
    return {"_class_name": "FluxTransformer2DModel", **common, "out_channels": t["final_layer.linear.weight"][0],
            "pooled_projection_dim": t["vector_in.in_layer.weight"][1], "axes_dims_rope": [first, (head - first) // 2, (head - first) // 2]}


def _vae_levels(v: Shapes) -> tuple[list[int], int]:
    levels = _count(v, r"encoder\.down\.(\d+)\.block\.0\.conv1\.weight")
    layers = _count(v, r"encoder\.down\.0\.block\.(\d+)\.conv1\.weight")
    return [v[f"encoder.down.{i}.block.{layers - 1}.conv2.weight"][0] for i in range(levels)], layers


def vae_config(v: Shapes, role: str) -> dict[str, Any]:
    """The diffusers config of a Flux.1 (AutoencoderKL) or Flux.2 (AutoencoderKLFlux2) VAE in the original naming."""
    channels, layers = _vae_levels(v)
    common = dict(in_channels=3, out_channels=3, block_out_channels=channels, layers_per_block=layers, norm_num_groups=32,
                  down_block_types=["DownEncoderBlock2D"] * len(channels), up_block_types=["UpDecoderBlock2D"] * len(channels),
                  latent_channels=v["decoder.conv_in.weight"][1],
                  sample_size=1024 if channels[0] >= 128 else 64)  # the real models' side; tests' tiny ones are 64
    if role == FLUX2_VAE:
        return {"_class_name": "AutoencoderKLFlux2", **common}
    # FLUX.1's published scale and shift; it has no quant convolutions.
    return {"_class_name": "AutoencoderKL", **common, "use_quant_conv": False, "use_post_quant_conv": False,
            "scaling_factor": 0.3611, "shift_factor": 0.1159}


def clip_l_config(c: Shapes) -> dict[str, Any]:
    return clip_config(c, "text_model.")


def t5_config(s: Shapes) -> dict[str, Any]:
    """T5 v1.1's encoder (gated GELU, untied head) as FLUX uses it."""
    block = "encoder.block.0.layer."
    buckets, heads = s[block + "0.SelfAttention.relative_attention_bias.weight"]
    rows = vocab_rows(T5, s, "")
    gated = block + "1.DenseReluDense.wi_0.weight" in s
    ff = s[block + ("1.DenseReluDense.wi_0.weight" if gated else "1.DenseReluDense.wi.weight")][0]
    return {"architectures": ["T5EncoderModel"], "model_type": "t5", "vocab_size": rows,
            "d_model": s[block + "0.SelfAttention.q.weight"][1], "d_kv": s[block + "0.SelfAttention.q.weight"][0] // heads,
            "d_ff": ff, "num_layers": _count(s, r"encoder\.block\.(\d+)\."), "num_heads": heads,
            "relative_attention_num_buckets": buckets, "feed_forward_proj": "gated-gelu" if gated else "relu",
            "tie_word_embeddings": False, "is_encoder_decoder": False, "use_cache": False}


def qwen3_config(s: Shapes, pad_token_id: int | None = None) -> dict[str, Any]:
    """Qwen3 (the causal LM class Klein's pipeline takes); its lm_head is tied when the file has none."""
    rows, hidden = s["model.embed_tokens.weight"]
    head = s["model.layers.0.self_attn.q_norm.weight"][0]
    config: dict[str, Any] = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": rows, "hidden_size": hidden,
        "intermediate_size": s["model.layers.0.mlp.gate_proj.weight"][0], "num_hidden_layers": _count(s, r"model\.layers\.(\d+)\."),
        "num_attention_heads": s["model.layers.0.self_attn.q_proj.weight"][0] // head,
        "num_key_value_heads": s["model.layers.0.self_attn.k_proj.weight"][0] // head, "head_dim": head,
        "tie_word_embeddings": "lm_head.weight" not in s, "pad_token_id": pad_token_id,
    }
    if hidden >= 1024:  # the published Qwen3 4B / 8B settings (tests' tiny encoder keeps the class defaults)
        config.update(max_position_embeddings=40960, rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"})
    return config


# --- the config folder of a model assembled from files -----------------------------------------
# A model kept in parts has the tensors an all-in-one file would hold; the loader gives them
# under these prefixes (split_layout.combined_shapes), and the config folder is written from them.

PREFIXES = {TRANSFORMER: "model.diffusion_model.", CLIP_L: "text_encoders.clip_l.", T5: "text_encoders.t5xxl.",
            QWEN3: "text_encoders.qwen3.", FLUX_VAE: "vae.", FLUX2_VAE: "vae."}
# FLUX.1-dev's published scheduler; schnell turns dynamic shifting off; Klein passes its own mu.
FLOW_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
                  "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
                  "max_image_seq_len": 4096}
SCHNELL_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.0,
                     "use_dynamic_shifting": False}
# Where each text encoder and its tokenizer sit in the diffusers pipelines, per generation.
ENCODER_FOLDERS = {1: {CLIP_L: ("text_encoder", "tokenizer"), T5: ("text_encoder_2", "tokenizer_2")},
                   2: {QWEN3: ("text_encoder", "tokenizer")}}
_CLASSES = {CLIP_L: ("transformers", "CLIPTextModel", "CLIPTokenizer"), T5: ("transformers", "T5EncoderModel", "T5TokenizerFast"),
            QWEN3: ("transformers", "Qwen3ForCausalLM", "Qwen2TokenizerFast")}


def write_skeleton(folder: Path, shapes: Shapes, kind: str, pipeline_class: str,
                   find_tokenizer: Callable[[int, str], Path | None]) -> Path:
    """model_index.json and every part's config (no weights) of a Flux model whose tensors,
    under ``PREFIXES``, are ``shapes``; the tokenizers copied from ``find_tokenizer(rows, subfolder)``
    (CLIP's made from shipped data)."""
    t = sub_shapes(shapes, PREFIXES[TRANSFORMER])
    gen = generation(t)
    transformer = transformer_config(t)
    index: dict[str, Any] = {"_class_name": pipeline_class, "_diffusers_version": "0.42.1",
                             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                             "transformer": ["diffusers", transformer["_class_name"]]}
    # Parts without tensors here come from a diffusers folder as they are (split_layout: PIPELINE).
    vae_role = FLUX2_VAE if gen == 2 else FLUX_VAE
    if v := sub_shapes(shapes, PREFIXES[vae_role]):
        vae = vae_config(v, vae_role)
        index["vae"] = ["diffusers", vae["_class_name"]]
        _write(folder / "vae" / "config.json", vae)
    for role, (encoder_folder, tokenizer_folder) in ENCODER_FOLDERS[gen].items():
        s = sub_shapes(shapes, PREFIXES[role])
        if not s:
            continue
        library, model_class, tokenizer_class = _CLASSES[role]
        index[encoder_folder], index[tokenizer_folder] = [library, model_class], [library, tokenizer_class]
        rows = vocab_rows(role, s, "")
        tokenizer = _copy_tokenizer(folder / tokenizer_folder, role, rows, find_tokenizer)
        config = {CLIP_L: clip_l_config, T5: t5_config}[role](s) if role != QWEN3 else qwen3_config(s, tokenizer.get("pad_token_id"))
        _write(folder / encoder_folder / "config.json", config)
    if gen == 2:
        index["is_distilled"] = kind == "flux2-klein"
    elif pipeline_class != "FluxFillPipeline":
        index.update(image_encoder=[None, None], feature_extractor=[None, None])
    guided = transformer["guidance_embeds"] or gen == 2
    _write(folder / "transformer" / "config.json", transformer)
    _write(folder / "scheduler" / "scheduler_config.json", FLOW_SCHEDULER if guided else SCHNELL_SCHEDULER)
    _write(folder / "model_index.json", index)  # last: its presence marks a complete skeleton
    return folder


class MissingTokenizer(Exception):
    """A text encoder's tokenizer was not found (the registry says so at listing; this is the load's guard)."""


def _copy_tokenizer(dest: Path, role: str, rows: int, find: Callable[[int, str], Path | None]) -> dict[str, Any]:
    """Put the tokenizer of a text encoder with ``rows`` embedding rows into ``dest``; returns its
    special token ids ({"pad_token_id": n} where known)."""
    if role == CLIP_L and write_tokenizer(dest, rows):
        return {}
    source = find(rows, ENCODER_FOLDERS[1 if role != QWEN3 else 2][role][1])
    if source is None:
        raise MissingTokenizer(f"no tokenizer was found for {PARTS[role].label} ({rows} tokens)")
    dest.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.is_file() and not file.name.endswith((".safetensors", ".bin", ".gguf")):
            shutil.copy2(file, dest / file.name)
    if role != QWEN3:
        return {}
    from transformers import AutoTokenizer

    return {"pad_token_id": AutoTokenizer.from_pretrained(dest).pad_token_id}


def _write(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")
