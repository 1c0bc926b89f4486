"""The Qt binding the plug-in runs on: PyQt6 where Krita has it (Krita 6 is
built on Qt 6), else PyQt5 (Krita 5). The plug-in's modules import Qt names
from here, never from PyQt5 or PyQt6, and spell enums with their scope
(``Qt.AlignmentFlag.AlignCenter``), which both bindings accept, so one code
base serves both."""

# Star imports on purpose: this module's one job is to be "the binding".
try:
    from PyQt6.QtCore import *  # noqa: F401,F403
    from PyQt6.QtGui import *  # noqa: F401,F403
    from PyQt6.QtWidgets import *  # noqa: F401,F403
except ImportError:  # Krita 5
    from PyQt5.QtCore import *  # noqa: F401,F403
    from PyQt5.QtGui import *  # noqa: F401,F403
    from PyQt5.QtWidgets import *  # noqa: F401,F403
