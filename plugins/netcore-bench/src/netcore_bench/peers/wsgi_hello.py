"""The WSGI hello app every WSGI server of ``netcore bench http`` runs (netcore ``--app``,
waitress, gunicorn): one app, so the rows compare servers, not apps.

Content-Length is given, as netcore's built-in hello, uvicorn's ASGI hello and nginx
send it: without it a server may choose chunked encoding and the rows would differ in
bytes on the wire.
"""

_BODY = b"Hello, World!"
_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(_BODY)))]


def app(environ, start_response):
    start_response("200 OK", list(_HEADERS))
    return [_BODY]
