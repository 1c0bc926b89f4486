"""The Krita plug-in's pixel work off the UI thread (plugins/krita/paintwire_krita/imaging.py),
from the packaged plug-in, in the system Python that Krita uses (PyQt5 from Debian).
Skips where that Python has no PyQt5."""

from __future__ import annotations

from test_krita_worker import plugin_dir, run_in_krita_python  # noqa: F401  (the fixture: the unpacked plug-in zip)

# Checks against plain Python: the mask union for odd widths (Qt pads image
# rows), selections with and without sketch strokes, previews scaled to their
# region in Krita's byte order, and thumbnails.
DRIVER = r"""
import json, random, sys
sys.path.insert(0, sys.argv[1])
import paintwire_krita  # puts the vendored packages on sys.path
from PyQt5.QtGui import QImage
from paintwire.protocol import ImagePayload, Layer, PixelFormat, Preview, Result
from paintwire_krita import imaging as pixels

out = {}
rng = random.Random(5)
for w, h in ((1, 1), (7, 3), (33, 17), (64, 40)):
    a = bytes(rng.randrange(256) for _ in range(w * h))
    b = bytes(rng.randrange(256) for _ in range(w * h))
    out[f"union {w}x{h}"] = pixels.union_masks(a, b, w, h) == bytes(map(max, a, b))
try:
    pixels.union_masks(b"\x00", b"\x00\x00", 1, 1)
    out["size mismatch"] = "no error"
except ValueError:
    out["size mismatch"] = "ValueError"

w, h = 5, 3
rgba = bytes([10, 20, 30, 255]) * (w * h)
sel = bytes([0, 255, 0, 128, 0] * h)
strokes = bytes([0, 0, 0, 0] * (w * h - 1) + [1, 2, 3, 200])  # one stroke pixel, bottom right
raw = pixels.RawSnapshot(w, h, "U8", rgba, sel, None, strokes)
snap = raw.finish()
out["sketch mask"] = list(snap.mask_layer)
out["no selection sketch"] = list(pixels.RawSnapshot(w, h, "U8", rgba, None, None, strokes).finish().mask_layer)
out["pixels kept"] = snap.pixels == rgba and snap.selection == sel

ev = Preview("j", ImagePayload(2, 1, PixelFormat.RGBA8, bytes([255, 0, 0, 255, 0, 0, 255, 255])), 4, 6, 4, 2)
prep = pixels.prepare_preview(ev)
out["preview region"] = [prep.x, prep.y, prep.width, prep.height, len(prep.bgra)]
out["preview first px"] = list(prep.bgra[:4])  # red in B, G, R, A
out["preview small"] = [prep.small.width(), prep.small.height()]
res = Result("j", (Layer(ImagePayload(200, 100, PixelFormat.BGRA8, bytes([0, 255, 0, 255]) * 20000), 0, 0, "r"),), 200, 100)
thumb = QImage.fromData(pixels.thumbnail_png(res), "PNG")
out["thumbnail"] = [thumb.width(), thumb.height(), thumb.pixelColor(1, 1).green()]
print(json.dumps(out))
"""


def test_pixel_work_matches_plain_python(plugin_dir, tmp_path):  # noqa: F811
    out = run_in_krita_python(DRIVER, plugin_dir, tmp_path)
    assert all(v is True for k, v in out.items() if k.startswith("union")), out
    assert out["size mismatch"] == "ValueError"
    # The selection's column values, with the one stroke pixel (alpha 200) added at the bottom right.
    assert out["sketch mask"] == [0, 255, 0, 128, 0] * 2 + [0, 255, 0, 128, 200]
    assert out["no selection sketch"] == [0] * 14 + [200]
    assert out["pixels kept"] is True
    assert out["preview region"] == [4, 6, 4, 2, 32]
    assert out["preview first px"] == [0, 0, 255, 255]
    assert out["preview small"] == [256, 128]
    assert out["thumbnail"][:2] == [64, 32] and out["thumbnail"][2] == 255
