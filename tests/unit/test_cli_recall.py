"""paintwire.cli.recall: ``paintwire recall`` prints the settings that hostkit.recall
fits for the plug-ins, as a command line; without a server, as they were saved."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest
from PIL import Image

from test_hostkit import BOTH, CLASSICAL, caps
from paintwire.cli.recall import command_line, read_settings, run_arguments
from paintwire.hostkit.recall import recollect
from paintwire.protocol.metadata import Recalled, png_text
from paintwire.protocol.pngtext import add_text

SAVED = {"engine": "diffusers", "mode": "inpaint", "model": "elsewhere", "params": {"prompt": "a fox", "seed": 42, "clip_skip": 2}}


def test_with_a_server_the_cli_prints_what_the_plug_ins_would_apply() -> None:
    args, notes = run_arguments(Recalled(SAVED, "paintwire"), BOTH)
    plugin = recollect(SAVED, BOTH)
    assert plugin.settings is not None
    assert args == ["run", "inpaint", "--engine", "diffusers", "--model", plugin.settings.model, "-p", "prompt=a fox", "-p", "seed=42"]
    assert notes[:-1] == list(plugin.notes) and "'elsewhere' is not on this server" in notes[0] and "clip_skip" in notes[1]
    assert notes[-1] == "Inpaint reads image and mask: add --image FILE and --mask FILE."


def test_an_image_from_another_program_goes_to_the_engine_that_has_the_mode() -> None:
    args, _ = run_arguments(Recalled({"mode": "inpaint", "params": {"method": "ns"}}, "webui"), caps(CLASSICAL))
    assert args[:4] == ["run", "inpaint", "--engine", "classical"]


def test_without_a_server_or_a_mode_for_it_the_settings_are_printed_as_saved() -> None:
    offline, notes = run_arguments(Recalled({"params": {"prompt": "x", "flag": True}}, "webui"), None)
    assert offline == ["run", "txt2img", "--engine", "diffusers", "-p", "prompt=x", "-p", "flag=true"] and notes == []
    unknown, notes = run_arguments(Recalled({"mode": "outpaint", "params": {"left": 8}}, "paintwire"), BOTH)
    assert unknown == ["run", "outpaint", "--engine", "diffusers", "-p", "left=8"]
    assert "cannot do" in notes[0] and notes[-1] == "the parameters are printed as saved."
    assert command_line(["run", "txt2img", "-p", "prompt=a b"]) == "paintwire run txt2img -p 'prompt=a b'"


def test_read_settings_names_the_file_it_cannot_read(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, "PNG")
    (tmp_path / "s.png").write_bytes(add_text(buf.getvalue(), png_text(SAVED)))
    found = read_settings(tmp_path / "s.png")
    assert found is not None and found.settings == SAVED
    (tmp_path / "x.png").write_bytes(b"JFIF")
    for missing, said in ((tmp_path / "x.png", "not a PNG"), (tmp_path / "none.png", "no such file")):
        with pytest.raises(ValueError, match=said) as caught:
            read_settings(missing)
        assert str(missing) in str(caught.value)
    assert shlex.split(command_line(run_arguments(found, None)[0]))[:3] == ["paintwire", "run", "inpaint"]
