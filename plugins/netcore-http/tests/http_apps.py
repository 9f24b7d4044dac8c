"""WSGI apps the tests serve, each wrapped in ``wsgiref.validate.validator``.

The server process imports this module (the tests put this directory on its
PYTHONPATH). Apps that must report something the test cannot see on the HTTP
connection (``close()`` was called, how much a stream has produced) send UDP datagrams
to a port the test names in the query string: the test waits on its socket, not on time.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import traceback
import zlib
from urllib.parse import parse_qs
from wsgiref.validate import validator

_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
_lock = threading.Lock()


def notify(port: int, message: str) -> None:
    if port:
        with _lock:
            _udp.sendto(message.encode(), ("127.0.0.1", port))


def memory() -> dict[str, int]:
    """This process's VmRSS and VmHWM (peak RSS) in KiB, from /proc."""
    found = {}
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name.lower()] = int(value.split()[0])
    return found


def _query(environ) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


class Stream:
    """A streamed body of ``count`` chunks of ``size`` bytes; reports progress and close()."""

    def __init__(self, count: int, size: int, port: int, tag: str, fail_at: int = -1) -> None:
        self.count, self.size, self.port, self.tag, self.fail_at = count, size, port, tag, fail_at

    def __iter__(self):
        chunk = b"x" * (self.size - 1) + b"\n"
        for index in range(self.count):
            if index == self.fail_at:
                raise RuntimeError("failing mid-stream, as asked")
            if self.port and index % 16 == 0:
                notify(self.port, f"progress {self.tag} {index}")
            yield chunk

    def close(self) -> None:
        notify(self.port, f"closed {self.tag}")


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    q = _query(environ)
    if path == "/echo":
        stream = environ["wsgi.input"]
        if environ.get("CONTENT_LENGTH"):
            body = stream.read(int(environ["CONTENT_LENGTH"]))
        else:  # a streamed chunked body: no length, read to EOF (wsgi.input_terminated)
            parts = []
            while True:
                chunk = stream.read(65536)
                if not chunk:
                    break
                parts.append(chunk)
            body = b"".join(parts)
        info = {
            "method": environ["REQUEST_METHOD"],
            "path": path,
            "query": environ["QUERY_STRING"],
            "script_name": environ["SCRIPT_NAME"],
            "protocol": environ["SERVER_PROTOCOL"],
            "body": body.decode("latin-1"),
            "content_length": environ.get("CONTENT_LENGTH", ""),
            "content_type": environ.get("CONTENT_TYPE", ""),
            "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
            "multithread": environ["wsgi.multithread"],
            "multiprocess": environ["wsgi.multiprocess"],
            "run_once": environ["wsgi.run_once"],
            "server_port": environ["SERVER_PORT"],
            "remote_addr": environ["REMOTE_ADDR"],
            "url_scheme": environ["wsgi.url_scheme"],
        }
        data = json.dumps(info).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    if path == "/upload":
        # Reads the body in pieces as an upload handler does; reports what arrived and
        # this process's memory (VmRSS now, VmHWM its peak), for the bounded-memory tests.
        stream = environ["wsgi.input"]
        size = int(q.get("read", "65536"))
        limit = int(q.get("limit", "-1"))
        total, crc = 0, 0
        while limit < 0 or total < limit:
            chunk = stream.read(size if limit < 0 else min(size, limit - total))
            if not chunk:
                break
            total += len(chunk)
            crc = zlib.crc32(chunk, crc)
        data = json.dumps({"bytes": total, "crc": crc, "method": environ["REQUEST_METHOD"],
                           "content_length": environ.get("CONTENT_LENGTH", ""), **memory()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    if path == "/memory":
        data = json.dumps(memory()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    if path == "/secret-fail":
        # Everything a careless log would leak sits in locals and in what is logged.
        authorization = environ.get("HTTP_AUTHORIZATION")  # noqa: F841 - a local a traceback could show
        cookie = environ.get("HTTP_COOKIE")  # noqa: F841
        try:
            raise KeyError("the app failed")
        except KeyError:
            traceback.print_exc(file=environ["wsgi.errors"])
            logging.getLogger("http_apps").exception("the app logs its own error")
        raise RuntimeError("failing with secrets in scope, as asked")
    if path == "/readline":
        stream = environ["wsgi.input"]
        lines = [stream.readline().decode("latin-1") for _ in range(3)]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(lines).encode()]
    if path == "/unread":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"did not read the body"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Stream(int(q.get("count", "4")), int(q.get("size", "10")), int(q.get("port", "0")),
                      q.get("tag", ""), int(q.get("fail_at", "-1")))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"then ")
        return [b"returned"]
    if path == "/fail-before":
        raise RuntimeError("failing before start_response, as asked")
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("something broke")
        except ValueError:
            import sys

            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"handled by the app"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/wait":
        # Stays in flight until the test sends a datagram to the port it is told about.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gate:
            gate.bind(("127.0.0.1", 0))
            gate.settimeout(60)
            notify(int(q["port"]), f"waiting {q['tag']} {gate.getsockname()[1]}")
            gate.recv(16)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"finished after the stop"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such test app\n"]


def _raw(environ, start_response):
    """Apps that break the WSGI rules on purpose (not validated: the validator would raise first)."""
    path = environ["PATH_INFO"]
    if path == "/bad-header":
        start_response("200 OK", [("X-Injected", "a\r\nSet-Cookie: evil=1")])
        return [b"must never be sent"]
    if path == "/short-length":  # announces more than it sends
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"abc"]
    if path == "/announced-no-body":  # announces a length and sends no body at all
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return []
    if path == "/vary":  # a header that differs per response, in a list of lists
        value = _query(environ).get("n", "")
        start_response("200 OK", [["Content-Type", "text/plain"], ["X-N", value]])
        return [value.encode()]
    if path == "/file":  # not validated: the validator's wrapper would hide the file from sendfile
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(_query(environ)["name"], "rb"), 8192)
    return app_validated(environ, start_response)


app_validated = validator(_app)


def app(environ, start_response):
    return _raw(environ, start_response)


def factory():
    """For ``--app http_apps:factory()``."""
    return validator(_app)
