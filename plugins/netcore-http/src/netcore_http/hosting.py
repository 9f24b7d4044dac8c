"""Which combinations can host an ASGI app, and telling WSGI and ASGI apps apart.

An ASGI app's coroutines run on an asyncio loop that shares its thread with a netcore
reactor (``netcore.reactor.asyncio_host``): the request is read, the app's task runs and
the response is written on one thread, with no hand-off. That needs two things of the
combination, both checked before anything binds:

* a dispatch scheme whose connections are served by a reactor loop on the thread that
  runs their handlers -- ``server.concurrency.event_loop`` and not ``handler_threads``:
  ``inline``, ``multi-reactor``, ``prefork`` (and ``multi-reactor-pool`` with
  ``--threads 0``, which is ``multi-reactor``). The blocking schemes have no loop; the
  pool schemes run handlers on threads that have none (a loop per pool thread would
  serve one request at a time per thread, the cost of threads with none of a loop's
  gain);
* a poller with a kernel object asyncio can watch (``epoll-lt``, ``epoll-et``):
  ``select`` and ``poll`` keep their fd sets in the process.

Nothing here is imported on the request path.
"""

from __future__ import annotations

import inspect
from typing import Any

#: The schemes that host ASGI apps, as the refusal names them.
ASGI_SCHEMES = "inline, multi-reactor, prefork (or multi-reactor-pool with --threads 0)"


def is_asgi(app: Any, interface: str) -> bool:
    """Whether ``app`` is served as ASGI under ``interface`` (auto: uvicorn's rule).

    ``auto`` takes a coroutine function (``async def app(scope, receive, send)``, also
    behind ``functools.partial``) or an object whose ``__call__`` is one (Starlette,
    FastAPI, middleware instances) as ASGI 3; anything else is WSGI. A class whose
    ``__call__`` is a coroutine function is an ASGI 2 "double callable"
    (``App(scope)`` then ``await instance(receive, send)``): see :func:`asgi2_to_asgi3`.
    """
    if interface == "wsgi":
        return False
    if interface == "asgi":
        return True
    if inspect.isclass(app):
        return inspect.iscoroutinefunction(app.__call__)  # instances are ASGI callables: ASGI 2
    if inspect.iscoroutinefunction(app):
        return True
    return inspect.iscoroutinefunction(type(app).__call__)


def as_asgi3(app: Any) -> Any:
    """The ASGI 3 callable for ``app``: itself, or an ASGI 2 class wrapped (uvicorn's ASGI2Middleware).

    Only a class is recognised as ASGI 2 -- a plain function that returns a coroutine
    function cannot be told from a WSGI app or an ASGI 3 app without calling it.
    """
    if inspect.isclass(app):
        async def asgi3(scope: dict, receive: Any, send: Any) -> None:
            await app(scope)(receive, send)

        asgi3.__qualname__ = f"asgi2:{app.__qualname__}"
        return asgi3
    return app


def dispatch_problem(dispatch: str, *, event_loop: bool, handler_threads: bool) -> str | None:
    """Why ``dispatch`` cannot host an ASGI app, or None."""
    if event_loop and not handler_threads:
        return None
    why = "has no event loop (a blocking scheme)" if not event_loop else "runs handlers on threads without a loop"
    return (f"setting 'dispatch': {dispatch!r} {why}, and an ASGI app runs on a reactor's own thread; "
            f"allowed for ASGI: {ASGI_SCHEMES}")


def poller_problem(poller: str, poller_class: Any) -> str | None:
    """Why ``poller`` cannot be watched by an asyncio loop, or None."""
    from netcore.reactor.poller import Poller

    if poller_class is None or getattr(poller_class, "fileno", Poller.fileno) is not Poller.fileno:
        return None
    return (f"setting 'poller': {poller!r} keeps no kernel object for the asyncio loop an ASGI app "
            "needs to watch; allowed for ASGI: epoll-lt, epoll-et")


def assembly_problems(assembly: Any) -> list[str]:
    """What the selected dispatcher and poller make impossible for an ASGI app."""
    config = assembly.config
    dispatch = assembly.dispatch
    dispatcher = dispatch.load()(config, registration=dispatch, **dispatch.kwargs)
    problems = []
    problem = dispatch_problem(dispatch.name, event_loop=bool(dispatcher.uses_poller),
                               handler_threads=bool(getattr(dispatcher, "handler_threads", False)))
    if problem:
        problems.append(problem)
    elif assembly.poller is not None:
        problem = poller_problem(assembly.poller.name, assembly.poller.load())
        if problem:
            problems.append(problem)
    return problems
