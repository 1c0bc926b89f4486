"""The model registry: kinds and families from tensor names and shapes, folders, the HF cache."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

pytest.importorskip("safetensors")

from paintwire.server.engines.diffusion.models import ModelRegistry, classify_file, read_header  # noqa: E402

SD1 = {
    "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
}


def write_safetensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A header-only safetensors file (zero-sized data is enough for the scanner)."""
    header = {k: {"dtype": "F32", "shape": list(v), "data_offsets": [0, 0]} for k, v in shapes.items()}
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


@pytest.mark.parametrize("shapes,kind", [
    (SD1, "sd15"),
    ({**SD1, "model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)}, "sd15-inpaint"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3), "cond_stage_model.model.token_embedding.weight": (49408, 1024)}, "sd2"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3), "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
      "conditioner.embedders.1.model.token_embedding.weight": (49408, 1280)}, "sdxl"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3), "model.diffusion_model.label_emb.0.0.weight": (1280, 2816)}, "sdxl-inpaint"),
    ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320)}, "lora"),
    ({"unet.down_blocks.0.attentions.0.to_q.lora_A.weight": (4, 320)}, "lora"),
    ({"emb_params": (2, 768)}, "embedding"),
    ({"clip_l": (1, 768), "clip_g": (1, 1280)}, "embedding"),
    ({"encoder.conv_in.weight": (128, 3, 3, 3), "decoder.conv_out.weight": (3, 128, 3, 3)}, "vae"),
    ({"conv_first.weight": (64, 3, 3, 3), "body.0.rdb1.conv1.weight": (32, 64, 3, 3), "conv_body.weight": (64, 64, 3, 3),
      "conv_last.weight": (3, 64, 3, 3)}, "upscaler"),  # Real-ESRGAN's naming
    ({"model.0.weight": (64, 3, 3, 3), "model.1.sub.0.RDB1.conv1.0.weight": (32, 64, 3, 3)}, "upscaler"),  # ESRGAN's
    ({"conv_first.weight": (64, 3, 3, 3)}, None),  # one tensor name is not an architecture
    ({"something.else": (3,)}, None),
])
def test_kind_and_family_come_from_the_tensors(tmp_path, shapes, kind):
    path = write_safetensors(tmp_path / "m.safetensors", shapes)
    assert classify_file(read_header(path), Path("m.safetensors")) == kind


def test_scan_finds_files_by_content_and_never_lists_pickles(tmp_path):
    write_safetensors(tmp_path / "a" / "model-one.safetensors", SD1)
    write_safetensors(tmp_path / "b" / "deep" / "style.safetensors", {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": (3072, 4)})
    (tmp_path / "old.ckpt").write_bytes(b"\x80\x04pickle")  # a pickle: never read, never listed
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 16)
    registry = ModelRegistry.scan([tmp_path, tmp_path / "missing"], include_hf_cache=False)
    assert {e.name: e.kind for e in registry.entries.values()} == {"model-one": "sd15", "style": "lora"}
    assert registry.default_checkpoint().name == "model-one"


def test_same_name_in_two_folders_keeps_both(tmp_path):
    write_safetensors(tmp_path / "x" / "m.safetensors", SD1)
    write_safetensors(tmp_path / "y" / "m.safetensors", SD1)
    assert sorted(ModelRegistry.scan([tmp_path], include_hf_cache=False).entries) == ["m", "m-2"]


def test_a_huge_header_is_refused(tmp_path):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ValueError):
        read_header(path)


def _diffusers_folder(folder: Path, cls: str, unet: dict, weights: bool = True) -> Path:
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": cls}))
    (folder / "unet" / "config.json").write_text(json.dumps(unet))
    if weights:
        write_safetensors(folder / "unet" / "diffusion_pytorch_model.safetensors", {"conv_in.weight": (320, 4, 3, 3)})
    return folder


def test_diffusers_folders_and_the_hf_cache(tmp_path, monkeypatch):
    models = tmp_path / "models"
    _diffusers_folder(models / "xl", "StableDiffusionXLPipeline", {"in_channels": 4, "addition_embed_type": "text_time"})
    _diffusers_folder(models / "sd2-inp", "StableDiffusionInpaintPipeline", {"in_channels": 9, "cross_attention_dim": 1024})
    _diffusers_folder(models / "pickled", "StableDiffusionPipeline", {"in_channels": 4}, weights=False)
    _diffusers_folder(models / "flux", "FluxPipeline", {"in_channels": 64})  # a Flux folder without its transformer
    _diffusers_folder(models / "sd3", "StableDiffusion3Pipeline", {"in_channels": 64})  # a family this engine does not serve
    cache = tmp_path / "hub"
    snap = _diffusers_folder(cache / "models--org--sd15" / "snapshots" / "abc", "StableDiffusionPipeline", {"in_channels": 4, "cross_attention_dim": 768})
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    registry = ModelRegistry.scan([models])
    found = {e.name: e.kind for e in registry.entries.values()}
    assert found == {"xl": "sdxl", "sd2-inp": "sd2-inpaint", "org/sd15": "sd15"}
    # Found but not loadable: listed apart, with the reason; another family is not this engine's at all.
    assert sorted(registry.unusable) == ["flux", "pickled"]
    assert "no .safetensors weights" in registry.unusable["pickled"].reason
    assert registry.unusable["flux"].kind == "flux" and "its transformer folder has no .safetensors weights" in registry.unusable["flux"].reason
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "nowhere"))
    assert "org/sd15" not in ModelRegistry.scan([models]).entries


def test_models_that_cannot_load_are_listed_with_the_reason(tmp_path):
    models = tmp_path / "models"
    ok = _diffusers_folder(models / "ok", "StableDiffusionPipeline", {"in_channels": 4})
    (ok / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
                                                     "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"]}))
    (ok / "tokenizer").mkdir()
    (ok / "tokenizer" / "vocab.json").write_text("{}")
    (ok / "tokenizer" / "merges.txt").write_text("#version: 0.2")
    no_tok = _diffusers_folder(models / "no-tokenizer", "StableDiffusionPipeline", {"in_channels": 4})
    (no_tok / "model_index.json").write_text((ok / "model_index.json").read_text())
    pickles = _diffusers_folder(models / "pickles", "StableDiffusionPipeline", {"in_channels": 4}, weights=False)
    (pickles / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04")
    write_safetensors(models / "t2i-adapter.safetensors", {"adapter.body.0.resnets.0.block1.weight": (320, 320, 3, 3)})
    (models / "truncated.safetensors").write_bytes(b"\x01")
    registry = ModelRegistry.scan([models], include_hf_cache=False)
    assert list(registry.entries) == ["ok"]
    reasons = {name: u.reason for name, u in registry.unusable.items()}
    assert set(reasons) == {"no-tokenizer", "pickles", "t2i-adapter", "truncated"}
    assert "tokenizer is missing" in reasons["no-tokenizer"]
    assert "pickles (.bin)" in reasons["pickles"] and "convert" in reasons["pickles"]
    assert "not a kind of model this server knows" in reasons["t2i-adapter"]
    assert "not a readable .safetensors file" in reasons["truncated"]
    assert registry.unusable["no-tokenizer"].kind == "sd15"
