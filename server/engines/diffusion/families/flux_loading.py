"""A Flux pipeline built from the files it is kept in, offline.

Each part is read from its own file (or its prefix inside an all-in-one file) into a
network made from the config folder that flux_files.write_skeleton wrote from the
tensors:

- the transformer through diffusers' ``from_single_file`` (BFL naming; fp8 weights are
  upcast to the load's dtype; a GGUF file stays quantised, dequantised layer by layer
  through ``GGUFQuantizationConfig``);
- the Flux.1 VAE through ``AutoencoderKL.from_single_file``; the Flux.2 VAE, which has
  no single-file reader, converted from the original naming with diffusers' own
  ``convert_ldm_vae_checkpoint``, its latent statistics (``bn.*``) as they are;
- the text encoders (transformers' naming, ComfyUI's files) loaded as state dicts
  into empty networks; their embeddings' tied copies are tied again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..entries import Part
from ..gguf_files import SUFFIX as GGUF_SUFFIX
from ..load_progress import read_weights
from .flux_files import CLIP_L, ENCODER_FOLDERS, FLUX2_VAE, FLUX_VAE, PIPELINE, QWEN3, T5, TRANSFORMER

_BFL_QUANT = {"encoder.quant_conv": "quant_conv", "decoder.post_quant_conv": "post_quant_conv"}
_ENCODER_CLASSES = {CLIP_L: "CLIPTextModel", T5: "T5EncoderModel", QWEN3: "Qwen3ForCausalLM"}


def load_pipeline(cls: Any, parts: tuple[Part, ...], config: Path, dtype: torch.dtype, kwargs: dict[str, Any]) -> Any:
    """The pipeline ``cls`` of a Flux model kept in ``parts``, with ``config`` its config folder."""
    by_role = {p.role: p for p in parts}
    transformer = _transformer(by_role[TRANSFORMER], config, dtype)
    if PIPELINE in by_role:  # the rest of a diffusers folder of the family, with this file's scheduler and kind
        import diffusers

        index = json.loads((config / "model_index.json").read_text(encoding="utf-8"))
        flags = {"is_distilled": index["is_distilled"]} if "is_distilled" in index else {}
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_pretrained(config, subfolder="scheduler")
        return cls.from_pretrained(by_role[PIPELINE].path, transformer=transformer, scheduler=scheduler, use_safetensors=True,
                                   **flags, **kwargs)
    generation = 2 if transformer.__class__.__name__.startswith("Flux2") else 1
    vae_role = FLUX2_VAE if generation == 2 else FLUX_VAE
    components: dict[str, Any] = {"transformer": transformer}
    if "vae" not in kwargs:
        components["vae"] = _vae(by_role[vae_role], vae_role, config, dtype)
    for role, (folder, _) in ENCODER_FOLDERS[generation].items():
        components[folder] = _text_encoder(role, by_role[role], config / folder, dtype)
    extra = {k: v for k, v in kwargs.items() if k not in ("local_files_only",)}
    return cls.from_pretrained(config, local_files_only=True, **components, **extra)


def _transformer(part: Part, config: Path, dtype: torch.dtype) -> Any:
    import diffusers

    name = json.loads((config / "transformer" / "config.json").read_text(encoding="utf-8"))["_class_name"]
    model_class = getattr(diffusers, name)
    common = dict(config=str(config), subfolder="transformer", local_files_only=True, torch_dtype=dtype)
    if part.path.suffix == GGUF_SUFFIX:
        return model_class.from_single_file(str(part.path), quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=dtype),
                                            **common)
    # diffusers' Flux.2 converter does not strip a ComfyUI prefix (the Flux.1 one does): read without it.
    return model_class.from_single_file(read_weights(part.path, prefix=part.prefix), **common)


def _vae(part: Part, role: str, config: Path, dtype: torch.dtype) -> Any:
    import diffusers

    state = read_weights(part.path, prefix=part.prefix)
    if role == FLUX_VAE:
        return diffusers.AutoencoderKL.from_single_file(state, config=str(config), subfolder="vae", local_files_only=True, torch_dtype=dtype)
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    vae_config = diffusers.AutoencoderKLFlux2.load_config(config / "vae")
    state = {_ldm_name(k): v for k, v in state.items()}
    body = {k: v for k, v in state.items() if not k.startswith("bn.")}
    converted = convert_ldm_vae_checkpoint(body, vae_config)
    converted.update({k: v for k, v in state.items() if k.startswith("bn.")})
    vae = _empty(lambda: diffusers.AutoencoderKLFlux2.from_config(vae_config))
    _assign(vae, converted, dtype, part, allowed_missing=("bn.num_batches_tracked",))
    return vae


def _ldm_name(key: str) -> str:
    """BFL's flux2-vae keeps the quant convolutions inside the encoder and decoder
    (``encoder.quant_conv.weight``); the LDM reader wants them on top (``quant_conv.weight``)."""
    module, _, param = key.rpartition(".")
    return f"{_BFL_QUANT.get(module, module)}.{param}"


def _text_encoder(role: str, part: Part, folder: Path, dtype: torch.dtype) -> Any:
    import transformers

    model_class = getattr(transformers, _ENCODER_CLASSES[role])
    config = model_class.config_class.from_pretrained(folder)
    state = read_weights(part.path, prefix=part.prefix)
    if role == CLIP_L:
        state = {k.removeprefix("text_model."): v for k, v in state.items()}  # transformers 5 flattened CLIPTextModel
    if role == T5 and "shared.weight" not in state and "encoder.embed_tokens.weight" in state:
        state["shared.weight"] = state["encoder.embed_tokens.weight"]  # some files keep the embedding under the encoder's name
    model = _empty(lambda: model_class(config))
    # The embedding's tied copies (T5's encoder.embed_tokens, Qwen3's lm_head) are not in the files.
    _assign(model, state, dtype, part, allowed_missing=("encoder.embed_tokens.weight", "lm_head.weight"))
    model.tie_weights()
    return model.eval()


def _empty(make: Any) -> Any:
    """A network with its parameters on the meta device (nothing allocated, nothing initialised);
    its buffers (positions, rotary frequencies) stay real."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return make()


def _assign(model: torch.nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype, part: Part, allowed_missing: tuple[str, ...]) -> None:
    own = model.state_dict()
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items() if k in own}
    missing = [k for k in own if k not in state and k not in allowed_missing]
    if missing:
        raise ValueError(f"{part.path.name} lacks {len(missing)} of the {type(model).__name__}'s tensors (first: {missing[0]})")
    model.load_state_dict(state, strict=False, assign=True)
