"""PNG text chunks and the settings formats in them (protocol/pngtext.py, protocol/metadata.py)."""

from __future__ import annotations

import io
import json
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from paintwire.protocol import ModeSpec, ParamSpec, ParamType
from paintwire.protocol.metadata import fit_to_mode, format_infotext, parse_infotext, png_text, quote, recall
from paintwire.protocol.pngtext import PngTextError, add_text, read_text


def png_bytes(**text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 5, 4), 200, np.uint8), "RGBA").save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


SETTINGS = {
    "engine": "diffusers", "mode": "txt2img", "model": "dreamy", "model_hash": "0123456789", "width": 512, "height": 768,
    "loras": [{"name": "ink", "weight": 0.6, "hash": "abcdef012345"}], "embeddings": [{"name": "bad-hands", "hash": "0f0f0f0f0f0f"}],
    "params": {"prompt": "a cat, sitting: on a mat <lora:ink:0.6>", "negative_prompt": "blurry, bad-hands", "steps": 20, "scheduler": "dpmpp_2m",
               "schedule": "karras", "cfg_scale": 7.0, "seed": 1234, "clip_skip": 2},
}
LABELS = {"scheduler": {"dpmpp_2m": "DPM++ 2M"}, "schedule": {"karras": "Karras"}}


def test_text_chunks_round_trip_latin1_as_text_and_the_rest_as_itxt() -> None:
    png = add_text(png_bytes(), {"parameters": "caf\u00e9", "paintwire": "\u732b \u2764"})
    assert b"tEXtparameters\x00caf\xe9" in png
    assert b"iTXtpaintwire\x00\x00\x00" in png
    assert read_text(png) == {"parameters": "caf\u00e9", "paintwire": "\u732b \u2764"}
    # Pillow, an independent reader, sees the same and still decodes the pixels.
    image = Image.open(io.BytesIO(png))
    assert image.text == {"parameters": "caf\u00e9", "paintwire": "\u732b \u2764"}
    assert np.asarray(image.convert("RGBA"))[0, 0, 0] == 200


def test_writing_again_replaces_instead_of_adding() -> None:
    png = add_text(add_text(png_bytes(), {"parameters": "one"}), {"parameters": "two"})
    assert png.count(b"parameters") == 1 and read_text(png)["parameters"] == "two"


def test_reads_compressed_chunks_that_other_programs_write() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "zipped text", zip=True)  # zTXt
    info.add_itxt("paintwire", "\u732b zipped", zip=True)  # compressed iTXt
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, "PNG", pnginfo=info)
    assert read_text(buf.getvalue()) == {"parameters": "zipped text", "paintwire": "\u732b zipped"}


def test_not_a_png_is_refused_and_a_bomb_is_skipped() -> None:
    with pytest.raises(PngTextError):
        read_text(b"GIF89a...")
    bomb = zlib.compress(b"x" * (8 << 20))
    chunk_data = b"parameters\x00\x00" + bomb
    import struct

    png = png_bytes()
    pos = png.index(b"IDAT") - 4
    chunk = struct.pack(">I", len(chunk_data)) + b"zTXt" + chunk_data + struct.pack(">I", zlib.crc32(b"zTXt" + chunk_data))
    assert read_text(png[:pos] + chunk + png[pos:]) == {}


def test_infotext_is_the_webuis_format_and_quoting() -> None:
    text = format_infotext(SETTINGS, LABELS)
    assert text == (
        "a cat, sitting: on a mat <lora:ink:0.6>\n"
        "Negative prompt: blurry, bad-hands\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 1234, Size: 512x768, "
        'Model hash: 0123456789, Model: dreamy, Clip skip: 2, Lora hashes: "ink: abcdef012345", TI hashes: "bad-hands: 0f0f0f0f0f0f"'
    )
    assert quote("plain") == "plain" and quote('a, "b"') == '"a, \\"b\\""' and quote("\u732b:1") == '"\u732b:1"'


def test_infotext_round_trips_through_the_webuis_reading() -> None:
    parsed = parse_infotext(format_infotext(SETTINGS, LABELS))
    assert parsed["params"]["prompt"] == SETTINGS["params"]["prompt"]
    assert parsed["params"]["negative_prompt"] == "blurry, bad-hands"
    assert parsed["embeddings"] == [{"name": "bad-hands", "hash": "0f0f0f0f0f0f"}]
    assert parsed["params"]["steps"] == 20 and parsed["params"]["cfg_scale"] == 7.0 and parsed["params"]["seed"] == 1234
    assert parsed["params"]["scheduler"] == "DPM++ 2M" and parsed["params"]["clip_skip"] == 2
    assert (parsed["width"], parsed["height"], parsed["model"], parsed["model_hash"]) == (512, 768, "dreamy", "0123456789")
    assert parsed["loras"] == [{"name": "ink", "weight": 0.6, "hash": "abcdef012345"}]


def test_a_real_webui_infotext_with_a_multiline_prompt() -> None:
    text = (
        "masterpiece, a castle\non a hill\nNegative prompt: ugly, (blurry:1.2)\nmore negative\n"
        'Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 5.5, Seed: 99, Size: 768x512, '
        'Model hash: e6e99610c4, Model: "v1-5, pruned", Denoising strength: 0.45, Version: v1.10.1'
    )
    parsed = parse_infotext(text)
    assert parsed["params"]["prompt"] == "masterpiece, a castle\non a hill"
    assert parsed["params"]["negative_prompt"] == "ugly, (blurry:1.2)\nmore negative"
    assert parsed["model"] == "v1-5, pruned" and parsed["params"]["strength"] == 0.45 and parsed["mode"] == "img2img"


def test_recall_prefers_paintwire_then_swarmui_then_webui() -> None:
    both = png_text(SETTINGS, LABELS)
    got = recall(both)
    assert got is not None and got.source == "paintwire" and got.settings == SETTINGS
    assert recall({"parameters": both["parameters"]}).source == "webui"  # type: ignore[union-attr]
    swarm = {"sui_image_params": {"prompt": "a fox", "negativeprompt": "", "model": "sdxl_base", "seed": 5, "steps": 25, "cfgscale": 6,
                                  "width": 1024, "height": 1024, "sampler": "euler", "scheduler": "karras", "clipstopatlayer": -2,
                                  "loras": ["ink"], "loraweights": ["0.7"]}}
    got = recall({"parameters": json.dumps(swarm)})
    assert got is not None and got.source == "swarmui"
    assert got.settings["params"]["prompt"] == "a fox" and got.settings["params"]["clip_skip"] == 2
    assert got.settings["model"] == "sdxl_base" and got.settings["loras"] == [{"name": "ink", "weight": 0.7}]
    assert recall({"Software": "GIMP"}) is None


MODE = ModeSpec(
    "txt2img", "Generate", "",
    params=(
        ParamSpec("prompt", ParamType.STRING, "", "Prompt", ""),
        ParamSpec("steps", ParamType.INT, 20, "Steps", "", minimum=1, maximum=50),
        ParamSpec("cfg_scale", ParamType.FLOAT, 7.0, "CFG scale", "", minimum=1.0, maximum=30.0),
        ParamSpec("seed", ParamType.SEED, -1, "Seed", ""),
        ParamSpec("scheduler", ParamType.CHOICE, "euler", "Sampler", "", choices=("euler", "dpmpp_2m"), choice_labels=("Euler", "DPM++ 2M")),
    ),
)


def test_fit_to_mode_maps_labels_and_notes_what_it_drops() -> None:
    fitted = fit_to_mode({"params": {"prompt": "x", "steps": "30", "cfg_scale": 6, "seed": 7, "scheduler": "DPM++ 2M",
                                     "clip_skip": 2, }}, MODE)
    assert fitted.params == {"prompt": "x", "steps": 30, "cfg_scale": 6.0, "seed": 7, "scheduler": "dpmpp_2m"}
    assert len(fitted.notes) == 1 and "clip_skip" in fitted.notes[0]
    fitted = fit_to_mode({"params": {"steps": 500, "scheduler": "LMS"}}, MODE)
    assert fitted.params == {} and len(fitted.notes) == 2
