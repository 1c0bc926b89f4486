"""The family seam: one object per architecture answers what the engine asks."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paintwire.protocol import CHECKPOINT_KINDS  # noqa: E402
from paintwire.server.engines.diffusion import families  # noqa: E402
from paintwire.server.engines.diffusion.families.base import TASKS  # noqa: E402

ENGINE = Path(__file__).resolve().parents[2] / "server" / "engines" / "diffusion"


def test_the_families_kinds_are_the_protocols_checkpoint_kinds():
    assert set(families.checkpoint_kinds()) == {k.value for k in CHECKPOINT_KINDS}
    for family in families.FAMILIES:
        for kind in family.kinds:
            assert families.family_of(kind) is family
    with pytest.raises(KeyError):
        families.family_of("lora")


def test_every_kind_has_a_pipeline_class_in_diffusers_for_each_task_it_names():
    import diffusers

    for family in families.FAMILIES:
        for kind in family.kinds:
            assert family.pipeline_name(kind, "txt2img") is not None, kind
            for task in TASKS:
                name = family.pipeline_name(kind, task)
                if name is not None:
                    assert hasattr(diffusers, name), (kind, task, name)
            for task in ("txt2img", "img2img", "inpaint"):
                for union in (False, True):
                    name = family.control_pipeline_name(task, union)
                    if name is not None:
                        assert hasattr(diffusers, name), (kind, task, union, name)


def test_the_engine_never_compares_family_names():
    """Family differences are answers of the family objects: no ``family == "sdxl"`` or
    tables keyed by family names outside the families package."""
    pattern = re.compile(r"family\s*[!=]=|==\s*SDXL|==\s*SD2|==\s*SD15|\"sdxl\"|'sdxl'")
    offenders = []
    for path in ENGINE.rglob("*.py"):
        if "families" in path.parts:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(ENGINE)}:{n}: {line.strip()}")
    assert offenders == []
