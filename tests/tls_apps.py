"""WSGI apps the TLS and PROXY protocol tests serve (``--app tls_apps:NAME``).

* ``environ``: answers with the request path and the environ keys the TLS and PROXY
  layers set, as JSON: what an application sees of the layers beneath the protocol.
"""

from __future__ import annotations

import json

KEYS = ("wsgi.url_scheme", "REMOTE_ADDR", "REMOTE_PORT", "HTTPS", "SSL_PROTOCOL", "SSL_CIPHER",
        "SSL_CLIENT_VERIFY", "SSL_CLIENT_S_DN", "SSL_CLIENT_CERT", "SSL_SESSION_RESUMED")


def environ(environ, start_response):
    seen = {key: environ.get(key) for key in KEYS}
    seen["PATH_INFO"] = environ.get("PATH_INFO")
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
