"""Logs that are safe and readable: no request data in any line, one traceback per event,
the app's own stdlib logging rendered like every other event (JSON stays JSON)."""

from __future__ import annotations

import http.client
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from http_testing import server_env, start
from netcore.testing.clients import TIMEOUT

SECRETS = ("SECRET-auth-1234", "SECRET-cookie-5678", "SECRET-query-9012", "SECRET-key-3456")


def send_secrets(address) -> int:
    conn = http.client.HTTPConnection(*address, timeout=TIMEOUT)
    conn.request("GET", f"/secret-fail?token={SECRETS[2]}", headers={
        "Authorization": f"Bearer {SECRETS[0]}", "Cookie": f"session={SECRETS[1]}", "X-Api-Key": SECRETS[3]})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


@pytest.mark.parametrize("scheme", ["inline", "pool"])
def test_json_logs_carry_no_secret_and_one_event_per_traceback(scheme):
    server = start(scheme, "--app", "http_apps:app")
    try:
        assert send_secrets(server.address) == 500
        failed = server.wait_event("http.app_failed")
        app_output = server.wait_event("http.app_error_output")
        app_logged = server.wait_event("the app logs its own error")
    finally:
        assert server.stop() == 0
    everything = "\n".join([json.dumps(event) for event in server.events] + server.other_lines)
    for secret in SECRETS:
        assert secret not in everything, f"{secret} reached the log"
    assert not server.other_lines, f"stderr lines that are not JSON events: {server.other_lines[:3]}"
    # One error, one event each: the server's report, what the app printed, what it logged.
    assert len(server.events_named("http.app_failed")) == 1
    assert len(server.events_named("http.app_error_output")) == 1
    assert "Traceback" in app_output["message"] and "KeyError" in app_output["message"]
    frames = failed["exception"][0]["frames"]
    assert frames and all("locals" not in frame for frame in frames)
    assert frames[-1]["filename"].endswith("http_apps.py")
    # The app's stdlib logging: a JSON event with its logger's name and a structured traceback.
    assert app_logged["logger"] == "http_apps" and app_logged["level"] == "error"
    assert app_logged["exception"][0]["exc_type"] == "KeyError"


def test_console_logs_carry_no_secret():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "netcore", "serve", "--log-format", "console", "--protocol",
                             "http", "--app", "http_apps:app", "--bind", f"127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**__import__("os").environ, **server_env()}, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True)
    reader.start()
    seen = []
    try:
        deadline = time.monotonic() + 30
        while not any("server.started" in line for line in seen):
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        assert send_secrets(("127.0.0.1", port)) == 500
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert "http.app_failed" in text and "RuntimeError" in text
    for secret in SECRETS:
        assert secret not in text, f"{secret} reached the console log"
