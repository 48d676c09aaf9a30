"""Make this directory's helper modules (secretgen) importable: the suite runs with
--import-mode=importlib, which does not put test directories on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
