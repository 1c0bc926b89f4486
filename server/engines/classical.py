"""The classical engine: real work with no model files.

Inpainting with OpenCV (Telea's fast marching or Navier-Stokes), a "fill"
from the surrounding colours, and Lanczos upscaling. It is what a fresh
install runs, and what the tests and benchmarks use where weights would be
needed otherwise.
"""

from __future__ import annotations

import cv2
import numpy as np

from paintwire.protocol import ErrorCode, ModelInfo, ModelKind, ModeSpec, ParamSpec, ParamType, PlacementKind, ProtocolError

from .. import masks
from ..layers import OutputLayer
from ..region import prepare_region, region_layer
from ..resample import lanczos_resize
from .base import Engine, EngineJob, EngineOutput, JobContext
from .common import IMAGE_INPUT, MASK_PARAMS, SELECTION_MASK, UPSCALE_PARAMS, ModeOrder, inpaint_crop

METHOD = ParamSpec(
    "method", ParamType.CHOICE, "telea", "Method",
    "telea: fast marching, good for scratches and small objects; ns: Navier-Stokes, smoother along edges; "
    "fill: smooth colour from around the hole, good for large areas and as a start for a model.",
    choices=("telea", "ns", "fill"), choice_labels=("Telea (fast marching)", "Navier-Stokes", "Fill from around"),
)
RADIUS = ParamSpec(
    "radius", ParamType.INT, 5, "Radius",
    "How far around each hole pixel telea and ns look for colour.", minimum=1, maximum=64, group="advanced",
)
FILL_PASSES = 8
_CV_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}

BUILTIN = (ModelKind.BUILTIN,)
INPAINT = ModeSpec(
    "inpaint", "Inpaint", "Remove what is selected and fill it from its surroundings.",
    inputs=(IMAGE_INPUT, SELECTION_MASK), params=(METHOD, RADIUS) + MASK_PARAMS, model_kinds=BUILTIN, order=ModeOrder.INPAINT,
    crop=inpaint_crop(),
)
UPSCALE = ModeSpec(
    "upscale", "Upscale", "Enlarge the picture with a Lanczos filter.",
    inputs=(IMAGE_INPUT,), placement=PlacementKind.RESIZE, params=UPSCALE_PARAMS, model_kinds=BUILTIN, order=ModeOrder.UPSCALE,
)


class ClassicalEngine(Engine):
    name = "classical"
    label = "Classical (no model)"

    def modes(self) -> tuple[ModeSpec, ...]:
        return (INPAINT, UPSCALE)

    def models(self) -> tuple[ModelInfo, ...]:
        return (ModelInfo("opencv", self.name, ModelKind.BUILTIN.value, "OpenCV (built in)"),)

    def run(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        assert job.image is not None
        if job.mode == "inpaint":
            assert job.mask is not None
            return EngineOutput([self._inpaint(job, ctx)], *job.canvas_size)
        return self._upscale(job, ctx)

    def _inpaint(self, job: EngineJob, ctx: JobContext) -> OutputLayer:
        p = job.params
        region = prepare_region(
            job.image, job.mask, blur=p["mask_blur"], blur_outward=p["mask_blur_outward"], invert=p["invert_mask"], padding=p["padding"],
            origin=job.origin, canvas=job.canvas,
        )
        rgb = np.ascontiguousarray(region.image[..., :3])
        # What the engine fills is the hard core of the mask; the feathered rim
        # is blended from it by the layer's alpha.
        hole = (region.mask > 0).astype(np.uint8) * 255
        if p["method"] == "fill":
            out = masks.fill(rgb, hole, FILL_PASSES, on_pass=lambda i, n: ctx.progress(i, n, "filling"))
        else:
            ctx.progress(0, 1, "inpainting")
            out = bounded_inpaint(rgb, hole, float(p["radius"]), _CV_METHODS[p["method"]])
            ctx.progress(1, 1, "inpainting")
        return region_layer(region, out, f"Inpaint ({p['method']})", settings=dict(p))

    def _upscale(self, job: EngineJob, ctx: JobContext) -> EngineOutput:
        p = job.params
        height, width = job.image.shape[:2]
        out_w = p["width"] or max(1, round(width * p["scale"]))
        out_h = p["height"] or max(1, round(height * p["scale"]))
        if out_w * out_h > job.max_output_pixels:
            raise ProtocolError(
                ErrorCode.INVALID_PARAM,
                f"The result would be {out_w}x{out_h} = {out_w * out_h} pixels; this server makes at most {job.max_output_pixels}. Use a smaller scale.",
                "job.params.scale",
            )
        ctx.progress(0, 1, "upscaling")
        pixels = lanczos_resize(job.image, out_w, out_h, on_tile=lambda i, n: ctx.progress(i, n, "upscaling"))
        layer = OutputLayer(pixels, 0, 0, f"Upscale {out_w}x{out_h}", settings=dict(p))
        return EngineOutput([layer], out_w, out_h)


# OpenCV's inpainting is one call that cannot be interrupted, and its cost grows
# with hole pixels x radius^2. This budget is about half a second on one core
# (a 512x512 hole at radius 5); bigger work runs at a reduced scale.
INPAINT_BUDGET = 512 * 512 * 5 * 5


def bounded_inpaint(rgb: np.ndarray, hole: np.ndarray, radius: float, method: int) -> np.ndarray:
    """cv2.inpaint, at full resolution when the work is within INPAINT_BUDGET;
    otherwise at the scale that brings it within (shrinking by f divides the
    cost by f^4), upscaled into the hole. Telea and Navier-Stokes fill large
    holes with smooth colour anyway, so little detail is lost, and one job can
    no longer hold the engine for minutes."""
    work = float(np.count_nonzero(hole)) * radius * radius
    if work <= INPAINT_BUDGET:
        return cv2.inpaint(rgb, hole, radius, method)
    factor = (work / INPAINT_BUDGET) ** 0.25
    h, w = hole.shape
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    small_rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    # Any hole pixel in a cell makes the cell a hole, so no hole colour leaks into the fill.
    small_hole = (cv2.resize(hole, size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8) * 255
    filled = cv2.inpaint(small_rgb, small_hole, max(1.0, radius / factor), method)
    up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.where(hole[..., None] > 0, up, rgb)
