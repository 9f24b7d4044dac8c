"""The raw ASGI hello app uvicorn runs in ``netcore bench http`` (no framework: the row
measures uvicorn and httptools alone). Same body and headers as
:mod:`.wsgi_hello`."""

_BODY = b"Hello, World!"
_START = {"type": "http.response.start", "status": 200,
          "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(_BODY)).encode())]}
_RESPONSE = {"type": "http.response.body", "body": _BODY}


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: nothing to set up
        return
    await send(_START)
    await send(_RESPONSE)
