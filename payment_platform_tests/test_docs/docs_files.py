"""What the docs tests read: the docs folder and its generator script (docs/generate.py, loaded by path: docs/ is
not a package)."""
from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


@cache
def generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
