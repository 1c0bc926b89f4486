"""The diffusers engine's modes and their parameters (validated by the server, not here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from paintwire.protocol import CHECKPOINT_KINDS, InputKind, InputSpec, ModelKind, ModeSpec, ParamSpec, ParamType, PlacementKind

from ..common import IMAGE_INPUT, INVERT_MASK, MASK_BLUR, MASK_BLUR_OUTWARD, PADDING, SCALE, SEED, SELECTION_MASK, TARGET_HEIGHT, TARGET_WIDTH, labels_for
from ..common import SELECTION_ONLY, ModeOrder, inpaint_crop
from ...region import context_side

from .samplers import SAMPLERS, SCHEDULES
from .families import FAMILIES, edit_kinds

SCHEDULERS = tuple(SAMPLERS)
# What the WebUI and most guides call them.
SCHEDULER_LABELS = {key: sampler.label for key, sampler in SAMPLERS.items()}

PROMPT = ParamSpec(
    "prompt", ParamType.STRING, "", "Prompt",
    "What to draw, in the WebUI's syntax: (word:1.3) or (word) weights up, [word] down, BREAK starts a new chunk, "
    "any length. <lora:name:weight> anywhere in it applies that LoRA at that weight; an embedding's name uses it.",
)
NEGATIVE_PROMPT = ParamSpec("negative_prompt", ParamType.STRING, "", "Negative prompt", "What to steer away from (same syntax as the prompt).")
STEPS = ParamSpec("steps", ParamType.INT, 20, "Steps", "Denoising steps (img2img and inpaint run steps x strength unless exact steps is on).", minimum=1, maximum=150)
CFG = ParamSpec("cfg_scale", ParamType.FLOAT, 7.0, "CFG scale",
                "How strongly the prompt steers the result; 1 turns guidance off (Turbo, Lightning, LCM and other few-step models).",
                minimum=1.0, maximum=30.0)
SCHEDULER = ParamSpec(
    "scheduler", ParamType.CHOICE, "dpmpp_2m_karras", "Sampler",
    "The sampling method, by the WebUI's names; LCM and TCD are for few-step models and LoRAs (see docs/models.md).",
    choices=SCHEDULERS, choice_labels=labels_for(SCHEDULERS, SCHEDULER_LABELS), group="advanced",
)
SCHEDULE = ParamSpec(
    "schedule", ParamType.CHOICE, "automatic", "Schedule type",
    "How the steps are spread over the noise levels: Automatic (the sampler's usual one), Uniform, Karras, Exponential, "
    "SGM Uniform (trailing timesteps, for Turbo, Lightning and Hyper-SD models). Karras and Exponential need a sampler "
    "with a sigma schedule (not Euler a, DDIM or PLMS); LCM and TCD take only Automatic.",
    choices=tuple(SCHEDULES), choice_labels=tuple(SCHEDULES.values()), group="advanced",
)
BATCH = ParamSpec("batch_size", ParamType.INT, 1, "Batch size", "Images made at once; image i uses seed + i.", minimum=1, maximum=8)
CLIP_SKIP = ParamSpec(
    "clip_skip", ParamType.INT, 1, "Clip skip",
    "Use the text encoder's output this many layers from the end (1 = the last layer; 2 is common for anime models).",
    minimum=1, maximum=12, group="advanced",
)
VAE = ParamSpec("vae", ParamType.STRING, "", "VAE", "A VAE from the model folders to use instead of the model's own; empty keeps the model's.", group="advanced")
GEN_WIDTH = ParamSpec("width", ParamType.INT, 0, "Width", "Image width; 0 means the model's native size.", minimum=0, maximum=16384)
GEN_HEIGHT = ParamSpec("height", ParamType.INT, 0, "Height", "Image height; 0 means the model's native size.", minimum=0, maximum=16384)
STRENGTH = ParamSpec("strength", ParamType.FLOAT, 0.75, "Denoising strength", "How much of the input is replaced: 0 keeps it, 1 ignores it.", minimum=0.0, maximum=1.0)
EXACT_STEPS = ParamSpec(
    "exact_steps", ParamType.BOOL, False, "Exact steps",
    "Run exactly the requested steps instead of steps x strength.", group="advanced",
)
RESIZE_MODE = ParamSpec(
    "resize_mode", ParamType.CHOICE, "just_resize", "Resize mode",
    "When the output's shape differs from the input's: just_resize stretches; crop_and_resize fills the output and crops "
    "the overflow; resize_and_fill fits the input inside and extends its edge colours; latent resizes in latent space "
    "(needs strength above about 0.55).",
    choices=("just_resize", "crop_and_resize", "resize_and_fill", "latent"),
    choice_labels=("Just resize", "Crop and resize", "Resize and fill", "Latent upscale"), group="advanced",
)
OUTPUT_SCALE = ParamSpec(
    "scale", ParamType.FLOAT, 1.0, "Scale", "Output size as a multiple of the input's (width and height override it).",
    minimum=0.25, maximum=4.0,
)
COLOUR_CORRECTION = ParamSpec(
    "colour_correction", ParamType.BOOL, False, "Colour correction",
    "Match the result's colour histogram to the original, so repeated edits do not drift.",
)
# Region first: a selection on a big canvas costs what the selection costs (issue: a 200x200
# selection on a 1024 canvas took 6x longer and 9 GB at whole_picture).
INPAINT_AREA = ParamSpec(
    "inpaint_area", ParamType.CHOICE, "only_masked", "Inpaint area",
    "only_masked (the default) works on the selection plus context: its bounds plus the padding, at least half the "
    "model's native size on each side, generated at the model's native resolution and pasted back, so a selection "
    "costs the same on any canvas. whole_picture works on the full image at its own size: slower and heavier on "
    "big canvases, for changes that must see everything.",
    choices=("only_masked", "whole_picture"), choice_labels=("Only masked (region first)", "Whole picture"),
)
MASKED_CONTENT = ParamSpec(
    "masked_content", ParamType.CHOICE, "original", "Masked content",
    "How the masked area starts: original; fill (colours from around it); latent_noise; latent_nothing. "
    "All but original need a high denoising strength.",
    choices=("original", "fill", "latent_noise", "latent_nothing"),
    choice_labels=("Original", "Fill from around", "Latent noise", "Latent nothing"),
)
SOFT_INPAINT = ParamSpec(
    "soft_inpaint", ParamType.BOOL, False, "Soft inpainting",
    "Blend new and old content step by step, following the mask's feathering, so they meet without seams.",
)
SOFT_PARAMS = (
    ParamSpec("soft_schedule_bias", ParamType.FLOAT, 1.0, "Schedule bias",
              "Shifts when the original is preserved along the denoising schedule; higher keeps it longer.", minimum=0.0, maximum=8.0, group="soft"),
    ParamSpec("soft_preservation_strength", ParamType.FLOAT, 0.5, "Preservation strength",
              "How strongly partially masked pixels keep the original.", minimum=0.0, maximum=8.0, group="soft"),
    ParamSpec("soft_transition_contrast", ParamType.FLOAT, 4.0, "Transition contrast boost",
              "Keeps detail in the blend by favouring the stronger of the two contents.", minimum=1.0, maximum=32.0, group="soft"),
    ParamSpec("soft_mask_influence", ParamType.FLOAT, 0.0, "Mask influence",
              "How much the mask, rather than the difference, decides the final blend.", minimum=0.0, maximum=1.0, group="soft"),
    ParamSpec("soft_difference_threshold", ParamType.FLOAT, 0.5, "Difference threshold",
              "How different new content must be to show through at half strength.", minimum=0.0, maximum=8.0, group="soft"),
    ParamSpec("soft_difference_contrast", ParamType.FLOAT, 2.0, "Difference contrast",
              "How sharply the final blend switches between old and new around the threshold.", minimum=0.0, maximum=8.0, group="soft"),
)
MASK_TRANSPARENCY = ParamSpec(
    "mask_transparency", ParamType.FLOAT, 0.0, "Mask transparency",
    "How much of the painted strokes shows through the result inside the mask (0 = none, 1 = only the strokes).",
    minimum=0.0, maximum=1.0,
)
SIDES = tuple(
    ParamSpec(side, ParamType.INT, 0, side.capitalize(), f"Pixels to add on the {side}.", minimum=0, maximum=4096)
    for side in ("left", "top", "right", "bottom")
)
UPSCALER = ParamSpec(
    "upscaler", ParamType.STRING, "lanczos", "Upscaler",
    "lanczos, or the name of an upscaler model from the model folders (ESRGAN, Real-ESRGAN, SwinIR, DAT, HAT, ... as "
    ".safetensors), run in overlapping tiles.",
)
REFINE = ParamSpec("refine", ParamType.BOOL, True, "Refine",
                   "After upscaling, add detail with a tiled low-strength img2img pass, the WebUI's SD upscale (needs a model).")
REFINE_STRENGTH = ParamSpec("strength", ParamType.FLOAT, 0.3, "Refine strength", "0.2-0.4 adds detail; latent upscaling would need 0.55+.", minimum=0.0, maximum=1.0)
TILE_SIZE = ParamSpec("tile_size", ParamType.INT, 0, "Tile size", "Refine tile side in pixels; 0 means the model's native size.", minimum=0, maximum=4096, group="advanced")
TILE_OVERLAP = ParamSpec("tile_overlap", ParamType.INT, 64, "Tile overlap", "Pixels that neighbouring tiles share, blended to hide seams.", minimum=0, maximum=512, group="advanced")

# The new area of an expand has no content of its own, so by default it starts filled from the edges.
OUTPAINT_MASKED_CONTENT = dataclasses.replace(MASKED_CONTENT, default="fill")

SAMPLING = (PROMPT, NEGATIVE_PROMPT, STEPS, CFG, SCHEDULER, SCHEDULE, SEED, BATCH, CLIP_SKIP, VAE)
IMAGE = (STRENGTH, EXACT_STEPS, COLOUR_CORRECTION)
INPAINT = (MASK_BLUR, MASK_BLUR_OUTWARD, INVERT_MASK, PADDING, INPAINT_AREA, MASKED_CONTENT, SOFT_INPAINT) + SOFT_PARAMS

CONTROL_INPUT = InputSpec(
    InputKind.CONTROL, required=False, label="Control layers",
    help="Layers that guide the result: line art, scribbles, edges, depth, pose, or a reference picture (see the kinds the server lists).",
)
# The largest native side of the checkpoint families: the crop rule's context must
# cover the work area of any model a job may name (protocol/crops.py).
LARGEST_NATIVE = max(f.native_size for f in FAMILIES)
INPAINT_CROP = inpaint_crop(context_side(LARGEST_NATIVE))

SKETCH_INPUT = InputSpec(
    InputKind.SKETCH, required=False, label="Sketch layer",
    help="A layer of rough colour strokes: they are part of the picture, and where they are painted joins the mask.",
)

TXT2IMG = ModeSpec("txt2img", "Generate", "A new picture from the prompt, the size of the canvas.", inputs=(CONTROL_INPUT,),
                   params=SAMPLING + (GEN_WIDTH, GEN_HEIGHT), model_kinds=CHECKPOINT_KINDS, order=ModeOrder.GENERATE)
IMG2IMG = ModeSpec("img2img", "Refine", "Rework the picture (or the selected part) following the prompt; sketch first for control.",
                   inputs=(IMAGE_INPUT, dataclasses.replace(SELECTION_MASK, required=False), CONTROL_INPUT),
                   params=SAMPLING + IMAGE + (RESIZE_MODE, OUTPUT_SCALE, TARGET_WIDTH, TARGET_HEIGHT),
                   model_kinds=CHECKPOINT_KINDS, order=ModeOrder.REFINE, crop=SELECTION_ONLY)
INPAINT_MODE = ModeSpec("inpaint", "Inpaint", "Regenerate what is selected; everything else stays exactly as it was.",
                        inputs=(IMAGE_INPUT, SELECTION_MASK, CONTROL_INPUT), params=SAMPLING + IMAGE + INPAINT,
                        model_kinds=CHECKPOINT_KINDS, order=ModeOrder.INPAINT, crop=INPAINT_CROP)
INPAINT_SKETCH = ModeSpec("inpaint_sketch", "Inpaint sketch",
                          "Paint rough colour strokes, select around them (or choose their layer as the sketch layer), and regenerate; "
                          "the strokes show through at the mask transparency.",
                          inputs=(IMAGE_INPUT, SELECTION_MASK, SKETCH_INPUT, CONTROL_INPUT), params=SAMPLING + IMAGE + INPAINT + (MASK_TRANSPARENCY,),
                          model_kinds=CHECKPOINT_KINDS, order=ModeOrder.SKETCH, crop=INPAINT_CROP)
OUTPAINT = ModeSpec("outpaint", "Expand", "Grow the canvas on any side and paint the new area to match.",
                    inputs=(IMAGE_INPUT, CONTROL_INPUT), placement=PlacementKind.GROW,
                    params=SAMPLING + IMAGE + (MASK_BLUR, PADDING, INPAINT_AREA, OUTPAINT_MASKED_CONTENT, SOFT_INPAINT) + SOFT_PARAMS + SIDES,
                    model_kinds=CHECKPOINT_KINDS, order=ModeOrder.EXPAND)
UPSCALE = ModeSpec("upscale", "Upscale", "Enlarge with Lanczos or an upscaler model, then optionally refine detail with a tiled img2img (SD upscale).",
                   inputs=(IMAGE_INPUT,), placement=PlacementKind.RESIZE,
                   params=SAMPLING + (SCALE, TARGET_WIDTH, TARGET_HEIGHT, UPSCALER, REFINE, REFINE_STRENGTH, EXACT_STEPS, TILE_SIZE, TILE_OVERLAP),
                   model_kinds=CHECKPOINT_KINDS, order=ModeOrder.UPSCALE)

# Instruction editing: the models whose family has an edit pipeline (Flux.1 Kontext, Flux.2 Klein).
EDIT_PROMPT = dataclasses.replace(
    PROMPT, label="Instruction",
    help="What to change, said plainly: 'make it winter', 'replace the cup with a teapot'. To bring in something from a "
         "reference layer, name it: 'put the hat from the second picture on her'. <lora:name:weight> applies a LoRA.",
)
EDIT_CFG = dataclasses.replace(
    CFG, default=2.5,
    help="How strongly the instruction steers: about 2.5 for Flux.1 Kontext (guidance it reads), 4 for Flux.2 Klein base "
         "(classifier-free guidance with the negative prompt); the distilled Flux.2 Klein ignores it.",
)
EDIT_STRENGTH = dataclasses.replace(
    STRENGTH, default=1.0,
    help="How much of the selection (or, with nothing selected, the picture) is made anew: 1 follows the instruction "
         "fully; lower keeps more of what is there.",
)
EDIT_REFERENCES = InputSpec(
    InputKind.CONTROL, required=False, label="Reference layers",
    help="Layers holding pictures the edit takes things from (control kind 'Edit reference'): a face, an object, a style. "
         "Each layer's painted part is used whole, wherever it lies on the canvas; hide it so it is not part of the picture.",
)
EDIT = ModeSpec(
    "edit", "Edit", "Change the selection, or the whole picture when nothing is selected, as an instruction says; "
    "reference layers give it pictures to take things from. Pixels outside the selection stay exactly as they were.",
    inputs=(IMAGE_INPUT, dataclasses.replace(SELECTION_MASK, required=False), EDIT_REFERENCES),
    params=(EDIT_PROMPT, NEGATIVE_PROMPT, STEPS, EDIT_CFG, SCHEDULER, SCHEDULE, SEED, BATCH, EDIT_STRENGTH, EXACT_STEPS,
            COLOUR_CORRECTION, MASK_BLUR, MASK_BLUR_OUTWARD, INVERT_MASK, PADDING, INPAINT_AREA),
    # Reference layers are read whole, wherever they lie, so a job sends the whole canvas
    # (the work stays region first: a selection costs what its region costs).
    model_kinds=tuple(ModelKind(k) for k in edit_kinds()), order=ModeOrder.EDIT,
)

MODES = (TXT2IMG, IMG2IMG, EDIT, INPAINT_MODE, INPAINT_SKETCH, OUTPAINT, UPSCALE)


def mode_named(name: str) -> ModeSpec:
    return next(m for m in MODES if m.name == name)


def with_upscalers(modes: tuple[ModeSpec, ...], upscalers: Sequence[str]) -> tuple[ModeSpec, ...]:
    """``modes`` with the upscale mode's ``upscaler`` offered as a choice of Lanczos and the
    upscaler models the model folders hold now (the capabilities follow a rescan)."""
    choice = dataclasses.replace(UPSCALER, type=ParamType.CHOICE, choices=("lanczos", *upscalers),
                                 choice_labels=("Lanczos", *upscalers))
    return tuple(
        dataclasses.replace(m, params=tuple(choice if p.name == UPSCALER.name else p for p in m.params)) if m.name == UPSCALE.name else m
        for m in modes
    )
