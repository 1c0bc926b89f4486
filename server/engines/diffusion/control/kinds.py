"""The kinds of control layer the diffusers engine takes, as it publishes them
(``EngineInfo.controls``): labels, help, preprocessors and their parameters.
Whether a kind is usable depends on the models installed (see ``catalog``)."""

from __future__ import annotations

from paintwire.protocol import ControlKind, ControlKindSpec, Preprocessor

from .preprocess import HIGH_THRESHOLD, INVERT, LOW_THRESHOLD, THRESHOLD, line_width

NONE = Preprocessor.NONE.value

KINDS: tuple[ControlKindSpec, ...] = (
    ControlKindSpec(ControlKind.SCRIBBLE.value, "Scribble", "Rough strokes the result follows loosely; paint them on a layer of their own.",
                    (Preprocessor.SCRIBBLE.value, NONE), (THRESHOLD, INVERT, line_width(5))),
    ControlKindSpec(ControlKind.LINEART.value, "Line art", "Clean line art the result follows closely.",
                    (Preprocessor.LINEART.value, NONE), (THRESHOLD, INVERT, line_width(1))),
    ControlKindSpec(ControlKind.SOFTEDGE.value, "Soft edge", "The soft outlines of a picture: keeps its composition, not its details.",
                    (Preprocessor.SOFTEDGE.value, NONE)),
    ControlKindSpec(ControlKind.CANNY.value, "Canny edges", "The edges of a picture: keeps its shapes and details.",
                    (Preprocessor.CANNY.value, NONE), (LOW_THRESHOLD, HIGH_THRESHOLD)),
    ControlKindSpec(ControlKind.DEPTH.value, "Depth", "A depth map (near is bright) that the result's shapes follow.", (NONE,)),
    ControlKindSpec(ControlKind.NORMAL.value, "Normal map", "A normal map (RGB = surface direction) that the result's surfaces follow.", (NONE,)),
    ControlKindSpec(ControlKind.POSE.value, "Pose", "An OpenPose skeleton picture that figures in the result take the pose of.", (NONE,)),
    ControlKindSpec(ControlKind.SEGMENTATION.value, "Segmentation", "A map of ADE20K-coloured areas saying what goes where.", (NONE,)),
    ControlKindSpec(ControlKind.REFERENCE.value, "Reference image",
                    "A picture whose look (subject, style, colours) the result takes on (IP-Adapter); the layer's painted part is used whole.",
                    (NONE,)),
    ControlKindSpec(ControlKind.EDIT_REFERENCE.value, "Edit reference",
                    "A picture the Edit mode takes things from (a face, an object, a style): name it in the instruction. "
                    "The layer's painted part is used whole, wherever it lies; it needs no model of its own.",
                    (NONE,)),
)

BY_NAME = {k.name: k for k in KINDS}

# Words in a ControlNet's file or folder name that say which kind it was trained for,
# checked in this order (the tensors do not tell).
NAME_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (ControlKind.LINEART.value, ("lineart", "line_art", "anime")),
    (ControlKind.SCRIBBLE.value, ("scribble", "scrib", "sketch")),
    (ControlKind.SOFTEDGE.value, ("softedge", "soft_edge", "hed", "pidi")),
    (ControlKind.CANNY.value, ("canny",)),
    (ControlKind.DEPTH.value, ("depth", "zoe", "midas")),
    (ControlKind.NORMAL.value, ("normal",)),
    (ControlKind.POSE.value, ("openpose", "pose")),
    (ControlKind.SEGMENTATION.value, ("seg", "ade20k")),
)


def kind_from_name(name: str) -> str | None:
    """The control kind a ControlNet's name says it was trained for, or None."""
    lowered = name.lower()
    for kind, words in NAME_WORDS:
        if any(w in lowered for w in words):
            return kind
    return None
