"""WSGI apps the metrics and deployment tests serve (``--app deployment_apps:NAME``).

* ``whoami``: answers with ``REMOTE_ADDR`` and the server's pid, so a client behind a
  balancer sees which address the app saw and which instance answered.
* ``slow``: ``/?SECONDS`` sleeps that long first (at most 5), then answers ``done``: a
  request that is still in flight when a stop begins; ``/?SECONDS&PATH`` first creates
  the file PATH, so that a test knows the request has reached the app.
* ``failing``: raises, for the 5xx class.
* ``hello``: 200 ``hello`` at ``/``, 404 elsewhere: two status classes from an app.
"""

from __future__ import annotations

import os
import time
import urllib.parse


def whoami(environ, start_response):
    body = f"{environ.get('REMOTE_ADDR', '')} {os.getpid()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def slow(environ, start_response):
    seconds_text, _, mark = (environ.get("QUERY_STRING") or "").partition("&")
    try:
        seconds = min(5.0, float(seconds_text or 0))
    except ValueError:
        seconds = 0.0
    if mark:  # a file the test waits for: this request has reached the app
        with open(urllib.parse.unquote(mark), "w"):
            pass
    time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"done\n"]


def failing(environ, start_response):
    raise RuntimeError("this app fails on purpose")


def hello(environ, start_response):
    found = environ.get("PATH_INFO") == "/"
    body = b"hello\n" if found else b"not found\n"
    start_response("200 OK" if found else "404 Not Found",
                   [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
