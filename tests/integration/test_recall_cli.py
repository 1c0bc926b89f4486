"""Settings in saved PNGs, through the real CLI and a real diffusers server over tiny models:
run -> recall -> run gives the same settings; the history records the WebUI's model and LoRA hashes."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

pytest.importorskip("diffusers")

from fixtures import tiny_models  # noqa: E402
from paintwire.protocol.metadata import recall  # noqa: E402
from paintwire.protocol.pngtext import add_text, read_text  # noqa: E402
from server_process import start_server_process  # noqa: E402


@pytest.fixture(scope="module")
def history_server(tmp_path_factory):
    models = tiny_models.build_model_folder(tmp_path_factory.mktemp("models"))
    history = tmp_path_factory.mktemp("history")
    server = start_server_process(model_dirs=[str(models)], engines=["classical", "diffusers"], history=True, history_dir=str(history))
    yield server, models, history
    server.stop()


def paintwire(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paintwire.cli.main", *args], capture_output=True, text=True, timeout=300)


def history_items(server, count: int) -> list[dict]:
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(server.http + "/api/history") as resp:
            items = json.loads(resp.read())["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


PROMPT = "a red fox, snow: night <lora:tinylora:0.7>"
NEGATIVE = "blurry, dark, tinyemb"  # an embedding, used by naming it


def unet_hash(models: Path) -> str:
    """The WebUI's model hash of the tiny diffusers folder: its UNet file's sha256, 10 hex digits."""
    unet = models / "checkpoints" / tiny_models.SD15 / "unet" / "diffusion_pytorch_model.safetensors"
    return hashlib.sha256(unet.read_bytes()).hexdigest()[:10]


def test_run_recall_run_gives_the_same_settings(history_server, tmp_path: Path) -> None:
    server, models, _ = history_server
    first = tmp_path / "first.png"
    run = paintwire("run", "txt2img", "--engine", "diffusers", "--model", tiny_models.SD15, "-p", f"prompt={PROMPT}",
                    "-p", f"negative_prompt={NEGATIVE}", "-p", "steps=2", "-p", "seed=123", "-p", "width=64", "-p", "height=64",
                    "-p", "scheduler=euler_a", "-q", "-o", str(first), "--url", server.url)
    assert run.returncode == 0, run.stderr
    chunks = read_text(first.read_bytes())
    assert set(chunks) >= {"parameters", "paintwire"}
    webui = chunks["parameters"]
    assert webui.startswith(f"{PROMPT}\nNegative prompt: {NEGATIVE}\nSteps: 2, Sampler: Euler a, ")
    assert "Seed: 123, Size: 64x64" in webui and f"Model: {tiny_models.SD15}" in webui

    recalled = paintwire("recall", str(first), "--url", server.url)
    assert recalled.returncode == 0, recalled.stderr
    line = recalled.stdout.strip()
    assert line.startswith("paintwire run txt2img --engine diffusers --model tiny-sd15 ") and line.endswith("-o OUTPUT.png")
    again = tmp_path / "again.png"
    args = shlex.split(line)[1:-2] + ["-q", "-o", str(again), "--url", server.url]
    history_items(server, 1)  # the first result is recorded: its model is hashed
    rerun = paintwire(*args)
    assert rerun.returncode == 0, rerun.stderr
    a, b = recall(read_text(first.read_bytes())), recall(read_text(again.read_bytes()))
    assert a is not None and b is not None
    # The same settings; the second result also carries the model's hash, which the server
    # knows from the first one's recording (it never makes a job wait to read a model file).
    assert "model_hash" not in a.settings and b.settings.pop("model_hash") == unet_hash(models)
    assert a.settings == b.settings
    assert f"Model hash: {unet_hash(models)}, Model: {tiny_models.SD15}" in read_text(again.read_bytes())["parameters"]
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))  # same seed, same picture

    # The history recorded both, with the WebUI's hashes of the checkpoint and the LoRA.
    items = history_items(server, 2)
    one = json.loads(urllib.request.urlopen(f"{server.http}/api/history/{items[0]['id']}").read())
    assert one["settings"]["model_hash"] == unet_hash(models)
    lora_file = models / "lora" / f"{tiny_models.LORA}.safetensors"
    data = lora_file.read_bytes()
    header = int.from_bytes(data[:8], "little")
    assert one["settings"]["loras"] == [{"name": "tinylora", "weight": 0.7, "hash": hashlib.sha256(data[8 + header:]).hexdigest()[:12]}]
    embedding = hashlib.sha256((models / "embeddings" / f"{tiny_models.EMBEDDING}.safetensors").read_bytes()).hexdigest()[:12]
    assert one["settings"]["embeddings"] == [{"name": "tinyemb", "hash": embedding}]
    stored = read_text(urllib.request.urlopen(f"{server.http}{one['image']}").read())["parameters"]
    assert f"Model hash: {one['settings']['model_hash']}" in stored and 'Lora hashes: "tinylora: ' in stored
    assert f'TI hashes: "tinyemb: {embedding}"' in stored


def test_recall_reads_the_webuis_text_and_fits_it_to_the_server(history_server, tmp_path: Path) -> None:
    server, _, _ = history_server
    image = tmp_path / "webui.png"
    Image.new("RGB", (8, 8)).save(image)
    text = ("a castle\nNegative prompt: fog\nSteps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 77, "
            "Size: 64x64, Model hash: e6e99610c4, Model: v1-5-pruned, Hires upscale: 2, Version: v1.10.1")
    image.write_bytes(add_text(image.read_bytes(), {"parameters": text}))
    run = paintwire("recall", str(image), "--url", server.url)
    assert run.returncode == 0, run.stderr
    args = shlex.split(run.stdout.strip())
    assert args[:6] == ["paintwire", "run", "txt2img", "--engine", "diffusers", "--model"] and args[6] != "v1-5-pruned"  # one it has
    params = dict(a.split("=", 1) for a in args[args.index("-p") + 1::2] if "=" in a)
    assert params["scheduler"] == "dpmpp_2m" and params["schedule"] == "karras" and params["seed"] == "77"
    assert params["prompt"] == "a castle" and params["negative_prompt"] == "fog" and params["width"] == "64"
    assert f"'v1-5-pruned' is not on this server; using {args[6]!r}" in run.stderr  # the model it does not have is named in a note
    offline = paintwire("recall", str(image), "--offline")
    assert offline.returncode == 0 and "'scheduler=DPM++ 2M'" in offline.stdout  # as saved: 'paintwire run' takes labels too
    as_json = json.loads(paintwire("recall", str(image), "--json").stdout)
    assert as_json["source"] == "webui" and as_json["settings"]["model_hash"] == "e6e99610c4"


def test_recall_of_a_file_without_settings_says_so(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    run = paintwire("recall", str(tmp_path / "plain.png"), "--offline")
    assert run.returncode == 2 and "carries no settings" in run.stderr
    (tmp_path / "x.png").write_bytes(b"not a png")
    run = paintwire("recall", str(tmp_path / "x.png"), "--offline")
    assert run.returncode == 2 and "not a PNG" in run.stderr


def test_history_maintain_from_the_command_line(tmp_path: Path) -> None:
    from paintwire.server.history.store import HistoryStore, NewRecord

    store = HistoryStore(tmp_path)
    rid = store.add(NewRecord(1.0, "c", "classical", "inpaint", "", "p", 1, 4, 4, {}, b"png", b"thumb"))
    store.close()
    (tmp_path / "images" / "000" / "77.png").write_bytes(b"stray")
    run = paintwire("history", "maintain", "--history-dir", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "1 result(s)" in run.stdout and "removed 1 file(s) without a record, 0 record(s)" in run.stdout
    assert not (tmp_path / "images" / "000" / "77.png").exists() and (tmp_path / "images" / "000" / f"{rid}.png").exists()
    missing = paintwire("history", "maintain", "--history-dir", str(tmp_path / "none"))
    assert missing.returncode == 2 and "no history in" in missing.stderr
