"""The protocol's words for kinds of things: one enum each, used by the server
that describes its modes and by every client that renders them.

Every enum here is open-ended on the wire (see docs/protocol.md, "Evolving the
protocol"): a newer server may send a value an older client does not know.
Readers keep such a value as its plain string instead of failing, and
:func:`known` tells the two apart; what a client then does with it is stated
per enum below.
"""

from __future__ import annotations

import enum
from typing import TypeVar, Union


class ModelKind(str, enum.Enum):
    """What a model file is, as ``ModelInfo.kind`` reports it and ``ModeSpec.model_kinds`` asks for it.

    A kind a client does not know is simply a kind no mode of that client's
    understanding asks for; modes name the kinds they take, so clients never
    guess which models can run a mode.
    """

    BUILTIN = "builtin"  # an engine's own code, no file (the classical engine's OpenCV)
    SD15 = "sd15"
    SD15_INPAINT = "sd15-inpaint"
    SD2 = "sd2"
    SD2_INPAINT = "sd2-inpaint"
    SDXL = "sdxl"
    SDXL_INPAINT = "sdxl-inpaint"
    FLUX = "flux"  # Flux.1 dev (and Krea): guidance distilled into the model
    FLUX_SCHNELL = "flux-schnell"  # Flux.1 schnell: few steps, no guidance
    FLUX_FILL = "flux-fill"  # Flux.1 Fill: the inpainting model
    FLUX_KONTEXT = "flux-kontext"  # Flux.1 Kontext: edits by instruction
    FLUX2_KLEIN = "flux2-klein"  # Flux.2 Klein, distilled (4 steps, no guidance): generates and edits
    FLUX2_KLEIN_BASE = "flux2-klein-base"  # Flux.2 Klein base: classifier-free guidance
    LORA = "lora"
    EMBEDDING = "embedding"
    VAE = "vae"
    UPSCALER = "upscaler"
    CONTROLNET = "controlnet"  # guides generation with a control image (ControlInput.model)
    IP_ADAPTER = "ip-adapter"  # guides generation with a reference picture
    IMAGE_ENCODER = "image-encoder"  # the CLIP vision model an IP-Adapter reads its picture with


# The kinds a diffusion job can be run with as "the model".
CHECKPOINT_KINDS: tuple[ModelKind, ...] = (
    ModelKind.SD15, ModelKind.SD15_INPAINT, ModelKind.SD2, ModelKind.SD2_INPAINT, ModelKind.SDXL, ModelKind.SDXL_INPAINT,
    ModelKind.FLUX, ModelKind.FLUX_SCHNELL, ModelKind.FLUX_FILL, ModelKind.FLUX_KONTEXT, ModelKind.FLUX2_KLEIN,
    ModelKind.FLUX2_KLEIN_BASE,
)


class InputKind(str, enum.Enum):
    """What a mode reads from the artist's document (``InputSpec.kind``).

    A client that meets a kind it does not know leaves an optional input of
    that kind out, and does not offer a mode that requires one.
    """

    IMAGE = "image"  # the canvas (visible image) or one layer, sent as job.image
    MASK = "mask"  # the selection (or a layer used as one), sent as job.mask
    SKETCH = "sketch"  # a layer of rough strokes: visible in job.image, its painted pixels added to job.mask
    CONTROL = "control"  # layers that guide the result (ControlNet, reference images), sent as job.controls


class ControlKind(str, enum.Enum):
    """What a control layer tells the model (``ControlKindSpec.name``, ``ControlInput.kind``).

    Engines publish the kinds they take in ``EngineInfo.controls``; a client offers
    those and never a list of its own, so a kind it does not know is simply shown
    with the label the server gives it.
    """

    CANNY = "canny"  # edges found in a picture
    SCRIBBLE = "scribble"  # rough strokes
    LINEART = "lineart"  # clean line art
    SOFTEDGE = "softedge"  # soft outlines (HED/PiDiNet-like)
    DEPTH = "depth"  # a depth map: near is bright
    NORMAL = "normal"  # a normal map (RGB = XYZ)
    POSE = "pose"  # an OpenPose skeleton picture
    SEGMENTATION = "segmentation"  # a colour-coded segmentation map (ADE20K colours)
    REFERENCE = "reference"  # a picture whose look the result takes on (IP-Adapter)
    EDIT_REFERENCE = "edit_reference"  # a picture an instruction edit takes things from (no model of its own)


class Preprocessor(str, enum.Enum):
    """How the server turns a control layer into the image a model reads
    (``ControlKindSpec.preprocessors``, ``ControlInput.preprocessor``)."""

    NONE = "none"  # the layer is used as it is (a map the artist made or exported)
    CANNY = "canny"  # OpenCV Canny edges of the layer
    SCRIBBLE = "scribble"  # painted strokes -> thick white lines on black
    LINEART = "lineart"  # painted lines -> thin white lines on black
    SOFTEDGE = "softedge"  # blurred gradient magnitude of the layer


class PlacementKind(str, enum.Enum):
    """Where a mode's result goes (``ModeSpec.placement``).

    A client that meets a kind it does not know treats it as ``new_document``
    when the result canvas differs in size from the input, else as ``layers``.
    """

    LAYERS = "layers"  # new layers placed at their (x, y) in the same document
    GROW = "grow"  # the canvas grows; the input's top-left corner lands at the result's (offset_x, offset_y)
    RESIZE = "resize"  # the whole picture at a new size: resize the document (or open a new one)
    NEW_DOCUMENT = "new_document"  # a new document of the result's size


class ParamGroup(str, enum.Enum):
    """Where a form shows a parameter (``ParamSpec.group``); other group names
    may appear and are shown folded, like ``advanced``, under their own title."""

    BASIC = "basic"
    ADVANCED = "advanced"


class ParamType(str, enum.Enum):
    """A parameter's type (``ParamSpec.type``). A client that meets a type it does not know
    leaves that parameter out of its form and its requests (the server's default
    applies) rather than failing: see ``ModeSpec.from_wire``."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    CHOICE = "choice"  # a string from ``choices``
    SEED = "seed"  # an int in [-1, 2**32 - 1]; -1 asks the server to pick one and report it


MAX_SEED = 2**32 - 1


class Widget(str, enum.Enum):
    """How a form shows a parameter (``FormField.widget``, protocol/form.py). A client that
    meets a widget it does not know shows the one protocol/form.py gives the parameter."""

    PROMPT = "prompt"  # a text box of its own, for a prompt
    SEED = "seed"  # a number from -1 (random) to 2**32 - 1
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"  # a check box
    CHOICE = "choice"  # a list of ``choices``, shown by their ``choice_labels``
    STRING = "string"  # a line of text


class Phase(str, enum.Enum):
    """What a running job is doing (``Progress.phase``), in the order a job goes through them.
    A client that meets a phase it does not know shows the progress event's ``stage`` word.
    ``working`` is any engine work without a phase of its own (a classical fill)."""

    PREPARING = "preparing"  # reading the request's pixels, preparing the region
    LOADING_MODEL = "loading_model"
    ENCODING = "encoding"  # the VAE turns pixels into latents (tile by tile when big)
    DENOISING = "denoising"
    DECODING = "decoding"  # the VAE turns latents back into pixels
    UPSCALING = "upscaling"
    WORKING = "working"
    FINISHING = "finishing"  # packing the result layers to send

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


E = TypeVar("E", bound=enum.Enum)


def known(enum_type: type[E], value: object) -> "Union[E, str]":
    """``value`` as a member of ``enum_type`` when it is one, else the plain string
    (a newer peer's word, kept so that it can be shown and passed on)."""
    try:
        return enum_type(value)
    except ValueError:
        return str(value)
