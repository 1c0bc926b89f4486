# Runs inside gimp-console (python-fu-eval): builds the test images, calls the Paintwire
# procedures non-interactively, and writes what came out for tests/hosts/test_gimp_host.py
# to check from outside. Reads $PW_JOB_DIR/spec.json; writes $PW_JOB_DIR/report.json plus,
# per case, mask.raw (the selection as GIMP holds it) and one PNG per layer.
import json
import os
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio

JOB = os.environ["PW_JOB_DIR"]
SPEC = json.load(open(os.path.join(JOB, "spec.json"), encoding="utf-8"))
report = {"cases": {}, "error": None, "gimp": Gimp.version()}


def pattern(width, height):
    # The same formula as the test's pattern(): every pixel distinct enough to catch a shift.
    out = bytearray(width * height * 4)
    for y in range(height):
        for x in range(width):
            i = (y * width + x) * 4
            out[i : i + 4] = bytes(((x * 7) % 256, (y * 11) % 256, ((x + y) * 5) % 256, 255))
    return bytes(out)


def status_name(status):
    return status.value_nick.upper().replace("-", "_")  # "SUCCESS", "EXECUTION_ERROR", ...


def read(drawable, fmt, width, height):
    rect = Gegl.Rectangle.new(0, 0, width, height)
    return bytes(drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.NONE))


def save_layer_png(layer, path):
    tmp = Gimp.Image.new(layer.get_width(), layer.get_height(), Gimp.ImageBaseType.RGB)
    copy = Gimp.Layer.new_from_drawable(layer, tmp)
    tmp.insert_layer(copy, None, 0)
    copy.set_offsets(0, 0)
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, tmp, Gio.File.new_for_path(path), None)
    tmp.delete()


def describe(image, case_dir, prefix):
    layers = []

    def walk(items, depth):
        for item in items:
            index = len(layers)
            _, x, y = item.get_offsets()
            entry = {"name": item.get_name(), "x": x, "y": y, "width": item.get_width(), "height": item.get_height(),
                     "group": item.is_group(), "depth": depth, "png": None}
            layers.append(entry)
            if item.is_group():
                walk(item.get_children(), depth + 1)
            else:
                entry["png"] = f"{prefix}-layer{index}.png"
                save_layer_png(item, os.path.join(case_dir, entry["png"]))

    walk(image.get_layers(), 0)
    return {"width": image.get_width(), "height": image.get_height(), "layers": layers}


RUN_MODES = {"noninteractive": Gimp.RunMode.NONINTERACTIVE, "interactive": Gimp.RunMode.INTERACTIVE,
             "last": Gimp.RunMode.WITH_LAST_VALS}


def run_procedure(name, image, drawables, args, run_mode="noninteractive"):
    proc = Gimp.get_pdb().lookup_procedure(name)
    if proc is None:
        raise RuntimeError(f"procedure {name} is not registered (the plug-in did not load)")
    config = proc.create_config()
    config.set_property("run-mode", RUN_MODES[run_mode])
    if image is not None:
        config.set_property("image", image)
        config.set_core_object_array("drawables", drawables)
    for key, value in args.items():
        config.set_property(key, value)
    return proc.run(config)


def make_image(width, height):
    """An RGB image with one layer, "Background", painted with pattern()."""
    image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    background = Gimp.Layer.new(image, "Background", width, height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(background, None, 0)
    buf = background.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, width, height), "R'G'B'A u8", pattern(width, height))
    buf.flush()
    return image, background


def plugin_module(name):
    """A module of the installed plug-in (PW_PLUGIN_DIR), imported the way paintwire.py
    sets up its path: the bundled packages first, the plug-in's folder last."""
    import importlib
    import sys

    here = os.environ["PW_PLUGIN_DIR"]
    if os.path.join(here, "vendor") not in sys.path:
        sys.path.insert(0, os.path.join(here, "vendor"))
        import paintwire.protocol  # noqa: F401  (before the folder, whose paintwire.py would shadow it)

        sys.path.append(here)
    return importlib.import_module(name)


def document_probe(case, case_dir):
    """The plug-in's GimpDocument in real GIMP, without a server: a preview shown in an
    image of its own and removed, then a result written on a canvas grown in place."""
    gimp_document = plugin_module("gimp_document")  # sets up the path for the vendored protocol too
    from paintwire.hostkit.placement import PlacedLayer, Placement
    from paintwire.protocol import PixelFormat, PlacementKind, Preview, raw_image

    width, height = case["width"], case["height"]
    image, background = make_image(width, height)
    doc = gimp_document.GimpDocument(image, [background], False)
    out = {}
    x, y, w, h = case["preview_region"]
    red = raw_image(4, 2, PixelFormat.RGBA8, bytes([255, 0, 0, 255]) * 8)
    before = {i.get_id() for i in Gimp.get_images()}
    doc.preview(Preview("probe", red, x, y, w, h))
    doc.preview(Preview("probe", red, x, y, w, h))  # a second preview replaces the first
    out["during"] = describe(image, case_dir, "during")
    out["preview_images"] = [describe(i, case_dir, f"preview{n}") for n, i in enumerate(Gimp.get_images()) if i.get_id() not in before]
    doc.end_preview()
    out["after"] = describe(image, case_dir, "after")
    out["images_after"] = len([i for i in Gimp.get_images() if i.get_id() not in before])
    gx, gy = case["grow"]
    grown_w, grown_h = width + gx, height + gy
    layer = PlacedLayer("Grown", 0, 0, grown_w, grown_h, bytes([0, 0, 255, 255]) * (grown_w * grown_h), PixelFormat.RGBA8, None)
    placement = Placement(grown_w, grown_h, True, None, (layer,), PlacementKind.GROW, gx, gy)
    new_image, top = doc.write(placement)
    out["new_image"] = new_image is not None
    out["grown"] = describe(image, case_dir, "grown")
    out["background_unchanged"] = read(background, "R'G'B'A u8", width, height) == pattern(width, height)
    image.delete()
    return out


def run_case(case):
    case_dir = os.path.join(JOB, case["name"])
    os.makedirs(case_dir, exist_ok=True)
    if case.get("kind") == "document_probe":
        return document_probe(case, case_dir)
    out = {}
    if "connection" in case:
        result = run_procedure("plug-in-paintwire-connection", None, [], case["connection"], case.get("connection_mode", "noninteractive"))
        out["connection_status"] = status_name(result.index(0))
    width, height = case["width"], case["height"]
    image, background = make_image(width, height)
    drawable = background
    patch_spec = case.get("patch")
    if patch_spec:
        # A smaller layer at an offset, one flat colour: the input when source=drawable.
        x, y, w, h = patch_spec["rect"]
        patch = Gimp.Layer.new(image, "Patch", w, h, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(patch, None, 0)
        patch.set_offsets(x, y)
        pbuf = patch.get_buffer()
        pbuf.set(Gegl.Rectangle.new(0, 0, w, h), "R'G'B'A u8", bytes(patch_spec["colour"]) * (w * h))
        pbuf.flush()
        drawable = patch
    guide = case.get("control_layer")
    guide_before = None
    if guide:
        # A layer to guide the job (a control layer): painted rectangles, hidden as an artist keeps it.
        lines = Gimp.Layer.new(image, guide["name"], width, height, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(lines, None, 0)
        gbuf = lines.get_buffer()
        for x, y, w, h in guide["rects"]:
            gbuf.set(Gegl.Rectangle.new(x, y, w, h), "R'G'B'A u8", bytes(guide["colour"]) * (w * h))
        gbuf.flush()
        lines.set_visible(guide.get("visible", False))
        guide_before = read(lines, "R'G'B'A u8", width, height)
        with open(os.path.join(case_dir, "control.rgba"), "wb") as fh:
            fh.write(guide_before)
    sel = case.get("selection")
    if sel:
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *sel["rect"])
        if sel.get("feather"):
            Gimp.Selection.feather(image, float(sel["feather"]))
        with open(os.path.join(case_dir, "mask.raw"), "wb") as fh:
            fh.write(read(image.get_selection(), "Y u8", width, height))
    before = read(background, "R'G'B'A u8", width, height)
    drawable_before = read(drawable, "R'G'B'A u8", drawable.get_width(), drawable.get_height())
    result = run_procedure(case["procedure"], image, [drawable], case.get("args", {}), case.get("run_mode", "noninteractive"))
    status = result.index(0)
    out["status"] = status_name(status)
    if status != Gimp.PDBStatusType.SUCCESS and result.length() > 1:
        out["message"] = str(result.index(1))
    out["background_unchanged"] = read(background, "R'G'B'A u8", width, height) == before
    out["drawable_unchanged"] = read(drawable, "R'G'B'A u8", drawable.get_width(), drawable.get_height()) == drawable_before
    if guide:
        out["control_layer_unchanged"] = read(lines, "R'G'B'A u8", width, height) == guide_before
    out["image"] = describe(image, case_dir, "image")
    if status == Gimp.PDBStatusType.SUCCESS:
        new_image = result.index(1)
        out["new_image"] = describe(new_image, case_dir, "new") if new_image is not None else None
        layer = result.index(2)
        out["returned_layer"] = layer.get_name() if layer is not None else None
        if new_image is not None:
            new_image.delete()
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(os.path.join(case_dir, "image.xcf")), None)
    image.delete()
    return out


try:
    for case in SPEC["cases"]:
        try:
            report["cases"][case["name"]] = run_case(case)
        except Exception:
            report["cases"][case["name"]] = {"status": "DRIVER_ERROR", "message": traceback.format_exc()}
except Exception:
    report["error"] = traceback.format_exc()
with open(os.path.join(JOB, "report.json"), "w", encoding="utf-8") as fh:
    json.dump(report, fh, indent=2)
