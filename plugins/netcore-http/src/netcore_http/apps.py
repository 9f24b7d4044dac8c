"""Finding the WSGI app that ``--app`` names: ``module:callable`` or ``module:factory()``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def load_app(spec: str) -> Any:
    """Import ``module`` and return ``callable`` (or the result of calling ``factory()``).

    The working directory is importable, as with gunicorn and uvicorn: ``--app app:wsgi``
    run next to ``app.py`` just works.
    """
    module_name, sep, attribute = spec.strip().partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError("expected module:callable or module:factory()")
    call = attribute.endswith("()")
    if call:
        attribute = attribute[:-2]
    if not attribute.replace(".", "").replace("_", "").isalnum():
        raise ValueError(f"{attribute!r} is not an attribute name")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app: Any = module
    for part in attribute.split("."):
        app = getattr(app, part)
    if call:
        app = app()
    if not callable(app):
        raise TypeError(f"{spec} is not callable")
    return app
