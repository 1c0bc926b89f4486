"""``python -m paintwire``: the paintwire command without a script on PATH.

On Windows a virtual environment's Scripts folder is often not on PATH, and a
user may have several Pythons; ``python -m paintwire serve`` always runs the
Paintwire installed in that Python. ``paintwire`` stays a namespace package:
this folder holds only this file (no __init__.py).
"""

import sys

from paintwire.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
