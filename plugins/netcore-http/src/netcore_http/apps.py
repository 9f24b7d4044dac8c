"""Finding the app (WSGI or ASGI) that ``--app`` names: ``module:callable`` or ``module:factory()``."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

from netcore.errors import UsageError


class AppImportError(UsageError):
    """The app's own code failed while it was imported (or its factory called): exit 2.

    The message is the real exception in one readable block -- the app's frames, file and
    line, and the error -- not netcore's or importlib's frames, and not a one-line
    "setting 'app' is not allowed" that would hide an ImportError of a dependency.
    """

    def __init__(self, spec: str, exc: BaseException) -> None:
        machinery = os.path.dirname(importlib.__file__)
        frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
                  if not frame.filename.startswith(("<frozen importlib", machinery)) and frame.filename != __file__]
        lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
        text = "".join(lines).rstrip("\n")
        super().__init__(f"the app {spec!r} failed to load:\n" + text)


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
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ValueError(f"no module named {module_name!r} in the working directory or on sys.path") from None
        raise AppImportError(spec, exc) from None  # the app's own import of something else
    except Exception as exc:  # SyntaxError, or anything the module raises at import
        raise AppImportError(spec, exc) from None
    app: Any = module
    for part in attribute.split("."):
        app = getattr(app, part)
    if call:
        try:
            app = app()
        except Exception as exc:
            raise AppImportError(spec, exc) from None
    if not callable(app):
        raise TypeError(f"{spec} is not callable")
    return app
