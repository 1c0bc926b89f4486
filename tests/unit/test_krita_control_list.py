"""The Krita docker's control-layer list (plugins/krita/paintwire_krita/control_list.py),
from the packaged plug-in, in the system Python that Krita uses (PyQt5 from Debian), with
Qt's offscreen platform: rows built from the server's kinds, each edit reported to the
controller, a rebuild from inside a row's own signal, and the preview. Skips where that
Python has no PyQt5."""

from __future__ import annotations

from test_krita_worker import plugin_dir, run_in_krita_python  # noqa: F401  (the fixture: the unpacked plug-in zip)

DRIVER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import paintwire_krita  # puts the vendored packages on sys.path
from PyQt5.QtWidgets import QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QPushButton, QSpinBox, QToolButton
from PyQt5.QtGui import QImage
from paintwire.hostkit.controls import ControlLayer
from paintwire.protocol import ParamSpec, ParamType
from paintwire.protocol.controls import ControlKindSpec
from paintwire_krita.control_list import ControlList

app = QApplication([])
THRESHOLD = ParamSpec("threshold", ParamType.INT, 128, "Ink threshold", "How dark a line is.", minimum=1, maximum=255)
KINDS = (ControlKindSpec("scribble", "Scribble", "Rough strokes.", ("scribble", "none"), (THRESHOLD,)),
         ControlKindSpec("depth", "Depth", "A depth map.", ("none",), problem="Add a depth ControlNet to models/controlnet."))


class Controller:
    def __init__(self):
        self.calls = []
        self.controls = [ControlLayer("Lines", "scribble", params={"threshold": 90}), ControlLayer("Gone", "depth", enabled=False)]
        self.widget = None

    def add_control(self):
        self.calls.append(["add"])

    def remove_control(self, index):
        self.calls.append(["remove", index])

    def preview_control(self, index):
        self.calls.append(["preview", index])

    def change_control(self, index, **changes):
        self.calls.append(["change", index, changes])
        if "kind" in changes:  # the docker rebuilds the rows from inside the combo's own signal
            self.controls[index] = ControlLayer(self.controls[index].layer, changes["kind"])
            self.widget.build(self.controls, KINDS, ["Lines", "Sketch"], True, "")


controller = Controller()
widget = ControlList(controller)
controller.widget = widget
widget.build(controller.controls, KINDS, ["Lines", "Sketch"], True, "")
find = lambda cls, name: widget.findChild(cls, name)
out = {}
layer = find(QComboBox, "paintwire-control-layer-0")
out["layers0"] = [layer.itemText(i) for i in range(layer.count())]
gone = find(QComboBox, "paintwire-control-layer-1")
out["layers1"] = [gone.itemText(i) for i in range(gone.count())]
out["kinds"] = [find(QComboBox, "paintwire-control-kind-0").itemText(i) for i in range(2)]
out["threshold"] = find(QSpinBox, "paintwire-control-param-0-threshold").value()
out["problem"] = find(QLabel, "paintwire-control-problem-1").text()
out["enabled1"] = find(QCheckBox, "paintwire-control-enabled-1").isChecked()
out["tips"] = all(find(QComboBox, f"paintwire-control-{w}-0").toolTip() for w in ("layer", "kind", "preprocessor"))
layer.setCurrentIndex(1)
find(QDoubleSpinBox, "paintwire-control-strength-0").setValue(0.5)
find(QDoubleSpinBox, "paintwire-control-end-0").setValue(0.6)
find(QComboBox, "paintwire-control-preprocessor-0").setCurrentIndex(1)
find(QSpinBox, "paintwire-control-param-0-threshold").setValue(60)
find(QPushButton, "paintwire-control-preview-0").click()
find(QToolButton, "paintwire-control-remove-1").click()
find(QPushButton, "paintwire-control-add").click()
kind = find(QComboBox, "paintwire-control-kind-0")
kind.setCurrentIndex(kind.findData("depth"))  # rebuilds the rows while the combo emits
app.processEvents()
out["after_rebuild"] = find(QComboBox, "paintwire-control-kind-0").currentData()
out["rows"] = len([w for w in widget.findChildren(QComboBox) if w.objectName().startswith("paintwire-control-kind-")])
out["calls"] = controller.calls
widget.build(controller.controls, (), [], False, "This model's engine takes no control layers.")
out["note"] = [widget.note.text(), widget.add_button.isEnabled()]
image = QImage(40, 20, QImage.Format.Format_Grayscale8)
image.fill(255)
widget.show_preview(image, "Lines: Scribble, scribble")
out["preview"] = [widget.preview.pixmap().width(), widget.preview.pixmap().height(), widget.caption.text()]
widget.show_preview(None, "")
out["cleared"] = widget.preview.pixmap() is None or widget.preview.pixmap().isNull()
print(json.dumps(out))
"""


def test_the_control_list_reports_every_edit_and_survives_its_own_rebuild(plugin_dir, tmp_path):  # noqa: F811
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = run_in_krita_python(DRIVER, plugin_dir, tmp_path, needs="PyQt5.QtWidgets", env=env)
    assert out["layers0"] == ["Lines", "Sketch"] and out["layers1"] == ["Lines", "Sketch", "Gone (gone)"]
    assert out["kinds"] == ["Scribble", "Depth"] and out["threshold"] == 90 and out["tips"] is True
    assert out["problem"] == "Add a depth ControlNet to models/controlnet." and out["enabled1"] is False
    assert out["calls"] == [
        ["change", 0, {"layer": "Sketch"}], ["change", 0, {"strength": 0.5}], ["change", 0, {"end": 0.6}],
        ["change", 0, {"preprocessor": "none"}], ["change", 0, {"params": {"threshold": 60}}],
        ["preview", 0], ["remove", 1], ["add"], ["change", 0, {"kind": "depth"}],
    ]
    assert out["after_rebuild"] == "depth" and out["rows"] == 2
    assert out["note"] == ["This model's engine takes no control layers.", False]
    assert out["preview"] == [256, 128, "Lines: Scribble, scribble"] and out["cleared"] is True
