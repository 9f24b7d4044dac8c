"""The uppercase protocol under every installed dispatch scheme: netcore's protocol contract.

This is how a third-party protocol gets the behaviour every scheme must preserve checked
without writing it: subclass ``ProtocolContract``, say what to send and what comes back.
Run it from the repository with ``python3 -m pytest examples/netcore-uppercase/tests``.
If the distribution is not installed (``pip install -e examples/netcore-uppercase``), the
server loads the plugin module from ``src/`` by import name (``-p``), as
docs/plugin-authoring.md describes for development.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from netcore.testing.protocol_contract import ProtocolContract

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINE = 4096


def _installed() -> bool:
    try:
        importlib.metadata.distribution("netcore-uppercase")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


INSTALLED = _installed()


class TestUppercaseContract(ProtocolContract):
    protocol = "uppercase"
    serve_args = ("--uppercase-max-line", str(MAX_LINE)) + (() if INSTALLED else ("-p", "netcore_uppercase.plugin"))

    def server_env(self):
        if INSTALLED:
            return None
        path = os.environ.get("PYTHONPATH")
        return {"PYTHONPATH": str(SRC) + (os.pathsep + path if path else "")}

    def request(self, i):
        return b"line %d of the contract\n" % i

    def reply(self, i):
        return b"LINE %d OF THE CONTRACT\n" % i

    def large_request(self):
        # 1536 lines at the limit: 6 MiB of replies, each line its own request.
        line = b"abcdefgh" * (MAX_LINE // 8) + b"\n"
        return line * 1536, line.upper() * 1536

    def closing_request(self):
        # A line over the limit is refused with an error line, then the server closes.
        return b"x" * (MAX_LINE + 1) + b"\n", b"ERR line too long\n"
