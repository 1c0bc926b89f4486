"""The paintwire command, run as a user runs it, against a real server."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from helpers import rect_mask, scene
from PIL import Image


def paintwire(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paintwire.cli.main", *args], capture_output=True, text=True, timeout=120)


def test_inpaint_writes_the_composited_image_and_layers(live_server, tmp_path):
    img = scene()
    Image.fromarray(img, "RGBA").save(tmp_path / "in.png")
    Image.fromarray(rect_mask(160, 120, 30, 30, 30, 30), "L").save(tmp_path / "mask.png")
    run = paintwire("inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"), "--method", "ns",
                    "-p", "mask_blur=0", "-o", str(tmp_path / "out.png"), "--layers", str(tmp_path / "layers"), "--url", live_server.url)
    assert run.returncode == 0, run.stderr
    out = np.asarray(Image.open(tmp_path / "out.png"))
    outside = rect_mask(160, 120, 30, 30, 30, 30) == 0
    assert np.array_equal(out[outside], img[outside]) and not np.array_equal(out, img)
    meta = json.loads((tmp_path / "layers" / "layers.json").read_text())
    assert meta["layers"][0]["x"] == 30 and meta["layers"][0]["settings"]["method"] == "ns"
    assert "Preparing" in run.stderr and "100% Inpainting" in run.stderr  # the progress lines: phase and share done


def test_upscale(live_server, tmp_path):
    Image.fromarray(scene(40, 30), "RGBA").save(tmp_path / "in.png")
    run = paintwire("upscale", str(tmp_path / "in.png"), "--scale", "3", "-o", str(tmp_path / "big.png"), "-q", "--url", live_server.url)
    assert run.returncode == 0, run.stderr
    assert Image.open(tmp_path / "big.png").size == (120, 90)


def test_exit_codes_and_messages(live_server, tmp_path):
    Image.fromarray(scene(), "RGBA").save(tmp_path / "in.png")
    Image.fromarray(rect_mask(80, 60, 0, 0, 5, 5), "L").save(tmp_path / "small-mask.png")
    bad = paintwire("inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "small-mask.png"), "-o", str(tmp_path / "o.png"), "--url", live_server.url)
    assert bad.returncode == 1 and "bad_mask" in bad.stderr and "must match" in bad.stderr
    missing = paintwire("upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png"), "--url", live_server.url)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    unknown = paintwire("upscale", str(tmp_path / "in.png"), "-p", "zoom=2", "-o", str(tmp_path / "o.png"), "--url", live_server.url)
    assert unknown.returncode == 2 and "no parameter 'zoom'" in unknown.stderr
    down = paintwire("upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--url", "ws://127.0.0.1:9/ws")
    assert down.returncode == 3 and "Is the server running" in down.stderr


def test_info_lists_engines_and_parameters(live_server):
    run = paintwire("info", "--url", live_server.url)
    assert run.returncode == 0 and "mode inpaint" in run.stdout and "mask_blur" in run.stdout
    as_json = json.loads(paintwire("info", "--json", "--url", live_server.url).stdout)
    assert as_json["limits"]["max_pixels"] > 0


def test_serve_refuses_a_bad_configuration(tmp_path):
    (tmp_path / "c.toml").write_text("colour = 'blue'\n", encoding="utf-8")
    run = paintwire("serve", "--config", str(tmp_path / "c.toml"))
    assert run.returncode == 2 and "Unknown setting 'colour'" in run.stderr


def test_paintwire_url_from_the_environment_is_honoured(live_server, tmp_path):
    """Without --url the client commands use PAINTWIRE_URL; --url still wins over it."""
    import os

    env = dict(os.environ, PAINTWIRE_URL=live_server.url)
    run = subprocess.run([sys.executable, "-m", "paintwire.cli.main", "info"], capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert f"at {live_server.url}" in run.stdout and "mode inpaint" in run.stdout
    env["PAINTWIRE_URL"] = "ws://127.0.0.1:9/ws"  # nothing listens there
    down = subprocess.run([sys.executable, "-m", "paintwire.cli.main", "info"], capture_output=True, text=True, timeout=120, env=env)
    assert down.returncode == 3 and "127.0.0.1:9" in down.stderr
    wins = subprocess.run([sys.executable, "-m", "paintwire.cli.main", "info", "--url", live_server.url],
                          capture_output=True, text=True, timeout=120, env=env)
    assert wins.returncode == 0, wins.stderr
