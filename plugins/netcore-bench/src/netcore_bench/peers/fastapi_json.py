"""The FastAPI JSON endpoint of ``netcore bench http``: netcore's FastAPI row and the
uvicorn-fastapi peer serve this same app (``GET /`` answers a small JSON object), so the
two rows differ only in the server."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict:
    return {"message": "Hello, World!"}
