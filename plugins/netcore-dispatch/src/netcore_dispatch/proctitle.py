"""Process titles that tell the master from its workers in ``ps`` and ``top``.

``setproctitle`` (optional: ``pip install setproctitle``) rewrites what ``ps`` shows,
which a Python program cannot do portably by itself -- hence the library. Without it,
Linux still gets the thread name (``ps -o comm``, ``top``) through
``prctl(PR_SET_NAME)``, which ``setproctitle`` also sets; elsewhere nothing changes.
"""

from __future__ import annotations

try:
    from setproctitle import setproctitle as _set
except ImportError:  # optional
    _set = None


def set_title(text: str) -> None:
    if _set is not None:
        _set(text)
        return
    try:
        with open("/proc/self/comm", "w") as fh:
            fh.write(text[:15])
    except OSError:
        pass
