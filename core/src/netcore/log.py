"""structlog set-up: console lines on a terminal, JSON lines otherwise, on stderr.

Events are the contract (``server.started``, ``server.stopped``, ...): tests and tools
read them as JSON. Nothing on the per-message path logs: rendering one JSON line costs
4-7 µs, more than a whole echo round trip in user space.

Three rules keep the log safe and readable whatever an app does:

* **Tracebacks carry no local variables.** structlog's defaults (``dict_tracebacks``,
  rich's console tracebacks) render every frame's locals -- in a server those are the
  WSGI environ, request headers, cookies and ``Authorization`` values. Frames keep their
  file, line and function, which is what a reader needs.
* **One traceback is one event**: it is a field of the event that reports the error
  (``exception``), never lines of its own.
* **The stdlib ``logging`` of an application goes through the same renderer**: the root
  logger gets one handler whose formatter is structlog's ``ProcessorFormatter``, so with
  ``--log-format json`` an app's ``logging.getLogger(__name__).error(...)`` is a JSON
  line like every other (gunicorn and uvicorn mix formats here). An app that installs
  its own root handlers keeps them: netcore adds its handler only to an unconfigured
  root logger.
"""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(fmt: str = "json", level: str = "info", stream=None) -> None:
    stream = stream or sys.stderr
    common = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        # The traceback as structured frames, without locals (see the module docstring).
        last = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(),
        ]
    else:
        last = [structlog.dev.ConsoleRenderer(colors=_isatty(stream), exception_formatter=_console_traceback())]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *common, *last],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream),  # writes and flushes each line
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(stream, _LEVELS[level], common, last)


def _console_traceback():
    """rich's traceback where rich is installed (it reads well), always without locals."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return structlog.dev.plain_traceback
    return structlog.dev.RichTracebackFormatter(show_locals=False, color_system=None)


#: The handler netcore put on the root logger (replaced, not stacked, on reconfiguration).
_root_handler: logging.Handler | None = None


def _route_stdlib_logging(stream, level: int, common: list, last: list) -> None:
    """Render stdlib ``logging`` records (an app's, a library's) like structlog's events."""
    global _root_handler
    root = logging.getLogger()
    if _root_handler is not None:
        root.removeHandler(_root_handler)
        _root_handler = None
    if root.handlers:
        return  # configured by someone else (an app, a test runner): theirs to keep
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *common],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last],
    ))
    root.addHandler(handler)
    root.setLevel(level)
    _root_handler = handler


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
