"""TLS beneath every protocol under every scheme, against real servers and real clients.

Certificates are made per test session (netcore.testing.certs, the ``cryptography``
package); nothing is committed. Clients: Python's ssl with its default verification,
curl ``--cacert``, ``openssl s_client`` (``-reconnect`` for resumption), redis-cli
``--tls`` and redis-py; each skips with the reason where it is not installed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest
from layer_testing import COMBOS, IDS
from netcore.testing.server_process import ServerProcess

pytest.importorskip("cryptography", reason="the TLS tests make their certificates with cryptography")
from netcore.testing.certs import make_test_pki  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
APP_ENV = {"PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}
TIMEOUT = 20.0



@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def tls_args(pki, *extra: str) -> list[str]:
    return ["--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key), *extra]


def client_context(pki, cert=None, key=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def tls_connect(address, context, **kwargs) -> ssl.SSLSocket:
    raw = socket.create_connection(address, timeout=TIMEOUT)
    return context.wrap_socket(raw, server_hostname="localhost", **kwargs)


def tls_echo(address, context, payload: bytes = b"ping\n") -> bytes:
    with tls_connect(address, context) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, f"EOF after {len(got)} of {len(payload)} bytes"
            got += chunk
        return got


def nonblocking_echo(address, context, payload: bytes, *, bufsize: int = 32768) -> bytes:
    """Send and receive at once on one thread (an SSL object must not be shared by two)."""
    raw = socket.create_connection(address, timeout=TIMEOUT)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
    sock = context.wrap_socket(raw, server_hostname="localhost")
    sock.setblocking(False)
    view = memoryview(payload)
    sent, received = 0, bytearray()
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while len(received) < len(payload):
            assert time.monotonic() < deadline, f"stalled: sent {sent}, received {len(received)}"
            selector.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if sent < len(payload) else 0))
            selector.select(1.0)
            try:
                while True:
                    chunk = sock.recv(65536)
                    assert chunk, f"EOF after {len(received)} bytes"
                    received += chunk
            except ssl.SSLWantReadError:
                pass
            if sent < len(payload):
                try:
                    sent += sock.send(view[sent:sent + 65536])
                except ssl.SSLWantWriteError:
                    pass
    sock.close()
    return bytes(received)


# -- every scheme --------------------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_16_mib_echo_over_tls_is_byte_identical(pki, combo):
    payload = os.urandom(16 << 20)
    with ServerProcess(*tls_args(pki), *combo, "--recv-size", "4096", "--high-water", "65536",
                       "--low-water", "16384") as server:
        got = nonblocking_echo(server.address, client_context(pki), payload)
        assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
        assert server.stop() == 0
        stats = server.stopped_event()["stats"]
        assert stats["bytes_received"] == stats["bytes_sent"] == len(payload)
        assert stats["errors"] == 0


@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_pipelined_http_over_tls_answers_in_order(pki, combo):
    with ServerProcess(*tls_args(pki), *combo, "--protocol", "http", "--app", "tls_apps:environ",
                       env=APP_ENV) as server:
        # The file shares the socket: the connection closes only when both are closed (left
        # open, the server's stop waited out its linger for this client's FIN: 2.5 s a test).
        with tls_connect(server.address, client_context(pki)) as sock, sock.makefile("rb") as stream:
            assert sock.selected_alpn_protocol() in (None, "http/1.1")
            requests = b"".join(f"GET /r{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(40))
            sock.sendall(requests)
            paths = []
            for _ in range(40):
                response = http.client.HTTPResponse(_Replay(stream))
                response.begin()
                seen = json.loads(response.read())
                paths.append(seen["PATH_INFO"])
                assert seen["wsgi.url_scheme"] == "https" and seen["HTTPS"] == "on"
                assert seen["SSL_PROTOCOL"] in ("TLSv1.2", "TLSv1.3") and seen["SSL_CIPHER"]
                assert seen["SSL_CLIENT_VERIFY"] == "NONE"
        assert paths == [f"/r{i}" for i in range(40)]
        assert server.stop() == 0


class _Replay:
    """What http.client.HTTPResponse reads from: one response at a time off a shared stream."""

    def __init__(self, stream):
        self.stream = stream

    def makefile(self, *_args, **_kwargs):
        return _NoClose(self.stream)


class _NoClose:
    def __init__(self, stream):
        self.stream = stream

    def __getattr__(self, name):
        return getattr(self.stream, name)

    def close(self):
        pass


@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_graceful_term_sends_close_notify(pki, combo):
    with ServerProcess(*tls_args(pki), *combo) as server:
        sock = tls_connect(server.address, client_context(pki), suppress_ragged_eofs=False)
        sock.sendall(b"before the stop\n")
        assert sock.recv(100) == b"before the stop\n"
        server.proc.send_signal(signal.SIGTERM)
        # close_notify makes recv return b''; a bare FIN would raise SSLEOFError here.
        assert sock.recv(100) == b""
        sock.close()
        assert server.stop() == 0


@pytest.mark.parametrize("extra", [("--dispatch", "iterative"), ("--dispatch", "prefork-blocking", "--workers", "1")],
                         ids=["iterative", "prefork-blocking"])
def test_a_client_queued_at_term_is_answered_after_its_handshake(pki, extra):
    """A blocking scheme's final accept takes the clients queued when the stop came; one
    whose TLS handshake happens only then sends its request after it, and is answered.
    (It was shut for reading right after the handshake: the client's request got a FIN.)"""
    with ServerProcess(*tls_args(pki), *extra) as server:
        context = client_context(pki)
        busy = tls_connect(server.address, context)  # holds the one worker
        busy.sendall(b"a\n")
        assert busy.recv(10) == b"a\n"
        queued = socket.create_connection(server.address, timeout=TIMEOUT)  # waits in the backlog
        server.proc.send_signal(signal.SIGTERM)
        assert busy.recv(10) == b""  # the stop reached the worker: it closed the idle one
        with context.wrap_socket(queued, server_hostname="localhost") as sock:
            # Not an event to await: the client's think time, or a round trip on a real
            # network, between its handshake and its request (sent at once, the request
            # often arrived with the client's Finished and hid the fault).
            time.sleep(0.2)
            sock.sendall(b"q\n")
            assert sock.recv(10) == b"q\n"
        busy.close()
        assert server.stop() == 0


@pytest.mark.parametrize("combo", [c for c in COMBOS if "prefork-blocking" not in c],
                         ids=[i for i in IDS if i != "prefork-blocking"])  # see the docstring
def test_200_stalled_handshakes_do_not_delay_a_fresh_client(pki, combo):
    """Blocking schemes with a fixed number of workers are left out: each stalled
    handshake holds a worker until tls_handshake_timeout, as a slow request would."""
    with ServerProcess(*tls_args(pki), *combo, "--max-connections", "1000") as server:
        stalled = [socket.create_connection(server.address, timeout=TIMEOUT) for _ in range(200)]
        try:
            for sock in stalled[::2]:
                sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
            context = client_context(pki)
            tls_echo(server.address, context)  # warm: the server has taken the 200 by now
            started = time.monotonic()
            assert tls_echo(server.address, context) == b"ping\n"
            elapsed = time.monotonic() - started
            assert elapsed < 0.1, f"a fresh client took {elapsed * 1000:.0f} ms behind 200 stalled handshakes"
        finally:
            for sock in stalled:
                sock.close()
        assert server.stop() == 0


@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_plaintext_to_the_tls_port_closes_only_that_connection(pki, combo):
    with ServerProcess(*tls_args(pki), *combo, "--protocol", "http") as server:
        context = client_context(pki)
        other = tls_connect(server.address, context)
        plain = socket.create_connection(server.address, timeout=TIMEOUT)
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert plain.recv(100) == b""
        except ConnectionResetError:
            pass
        plain.close()
        other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert other.recv(100).startswith(b"HTTP/1.1 200")
        other.close()
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] >= 1


def test_a_stalled_handshake_is_closed_after_the_timeout(pki):
    with ServerProcess(*tls_args(pki, "--tls-handshake-timeout", "0.3")) as server:
        sock = socket.create_connection(server.address, timeout=TIMEOUT)
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 0.25 < time.monotonic() - started < 5
        sock.close()
        server.wait_event("tls.handshake_timeout")
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 1


# -- client certificates ---------------------------------------------------------------------


@pytest.mark.parametrize("combo", [("--poller", "epoll-et"), ("--dispatch", "threading")], ids=["inline", "threading"])
def test_client_certificates_when_required(pki, combo):
    args = tls_args(pki, "--cert-reqs", "required", "--ca-certs", str(pki.ca_cert), "--protocol", "http",
                    "--app", "tls_apps:environ")
    with ServerProcess(*args, *combo, env=APP_ENV) as server:
        good = client_context(pki, pki.client_cert, pki.client_key)
        with tls_connect(server.address, good) as sock:
            sock.sendall(b"GET /me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            seen = json.loads(_read_all(sock).split(b"\r\n\r\n", 1)[1])
        assert seen["SSL_CLIENT_VERIFY"] == "SUCCESS"
        assert seen["SSL_CLIENT_S_DN"] == "CN=alice,O=netcore tests"
        assert seen["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
        refused = 0
        for cert, key in ((None, None), (pki.expired_cert, pki.expired_key), (pki.stranger_cert, pki.stranger_key)):
            try:
                with tls_connect(server.address, client_context(pki, cert, key)) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert sock.recv(100) == b""
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                pass
            refused += 1
        with tls_connect(server.address, good) as sock:  # and the server serves on
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_all(sock).startswith(b"HTTP/1.1 200")
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == refused


def _read_all(sock) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# -- listeners, settings ---------------------------------------------------------------------


def test_a_plaintext_and_a_tls_listener_in_one_server(pki):
    with ServerProcess(*tls_args(pki), "--bind", "127.0.0.1:0", "--bind", "tls:127.0.0.1:0", bind="") as server:
        plain_text, tls_text = server.addresses
        plain = socket.create_connection(_hostport(plain_text), timeout=TIMEOUT)
        plain.sendall(b"plain\n")
        assert plain.recv(100) == b"plain\n"
        plain.close()
        assert tls_echo(_hostport(tls_text), client_context(pki)) == b"ping\n"
        assert server.stop() == 0


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


@pytest.mark.parametrize("args, setting", [
    (["--certfile", "/nonexistent/cert.pem"], "certfile"),
    (["--bind", "tls:127.0.0.1:0"], "certfile"),
    (["--cert-reqs", "required"], "certfile"),
], ids=["missing-cert", "tls-address-without-cert", "cert-reqs-without-cert"])
def test_bad_tls_settings_fail_at_start_with_one_line(args, setting):
    proc = subprocess.run(["netcore", "serve", "--bind", "127.0.0.1:0", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and setting in lines[0], proc.stderr


def test_an_encrypted_key_with_its_password(pki):
    with ServerProcess("--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key_encrypted),
                       "--keyfile-password", pki.key_password) as server:
        assert tls_echo(server.address, client_context(pki)) == b"ping\n"
        assert server.stop() == 0


def _serve_on_a_terminal(*args: str) -> subprocess.CompletedProcess:
    """``netcore serve`` whose controlling terminal is a pseudo-terminal, as from a shell:
    where OpenSSL would ask for a key's password, it asks there (and waits)."""
    import fcntl
    import pty
    import termios

    leader, follower = pty.openpty()

    def take_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        return subprocess.run(["netcore", "serve", "--bind", "127.0.0.1:0", *args], stdin=follower,
                              capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=take_terminal)
    finally:
        os.close(follower)
        os.close(leader)


def test_an_encrypted_key_without_its_password_fails_at_once_naming_the_setting(pki):
    """No prompt on the terminal (the server sat at "Enter PEM pass phrase:"): one line
    naming keyfile_password, exit 2."""
    proc = _serve_on_a_terminal("--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key_encrypted))
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'keyfile_password'" in lines[0] and "encrypted" in lines[0], proc.stderr


def test_a_certfile_without_a_certificate_is_named_certfile(pki, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    proc = _serve_on_a_terminal("--certfile", str(garbage), "--keyfile", str(pki.server_key))
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].split(":")[2].strip().startswith("setting 'certfile'"), proc.stderr


def test_a_relative_certfile_that_is_missing_says_where_it_was_looked_for(pki, tmp_path):
    """After --chdir a relative path is read from the new working directory: the one
    line says which directory, since the operator's shell was elsewhere."""
    (tmp_path / "run").mkdir()
    proc = subprocess.run(["netcore", "serve", "--bind", "127.0.0.1:0", "--chdir", str(tmp_path / "run"),
                           "--certfile", "server.pem", "--keyfile", str(pki.server_key)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "setting 'certfile'" in lines[0] and f"no such file in the working directory {tmp_path / 'run'}" in lines[0]


def test_an_expired_certificate_is_warned_about_and_a_valid_one_is_not(pki):
    with ServerProcess("--certfile", str(pki.expired_cert), "--keyfile", str(pki.expired_key)) as server:
        line = server.wait_event("tls.certificate_expired", TIMEOUT)
        assert line["certfile"] == str(pki.expired_cert) and line["not_after"].endswith("GMT")
        assert server.stop() == 0
    with ServerProcess(*tls_args(pki)) as server:
        assert tls_echo(server.address, client_context(pki)) == b"ping\n"
        assert server.stop() == 0
        assert not server.events_named("tls.certificate_expired") and not server.events_named("tls.certificate_expiring")


# -- third-party clients ---------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_cacert(pki):
    with ServerProcess(*tls_args(pki), "--protocol", "http", "--app", "tls_apps:environ", env=APP_ENV) as server:
        host, port = server.address
        proc = subprocess.run(["curl", "-sS", "--cacert", str(pki.ca_cert), f"https://localhost:{port}/curl"],
                              capture_output=True, timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        seen = json.loads(proc.stdout)
        assert seen["PATH_INFO"] == "/curl" and seen["wsgi.url_scheme"] == "https"
        assert server.stop() == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize("combo", [("--poller", "epoll-lt"), ("--dispatch", "prefork", "--workers", "2"),
                                   ("--dispatch", "threading")], ids=["inline", "prefork", "threading"])
def test_openssl_s_client_resumes_its_session(pki, combo):
    with ServerProcess(*tls_args(pki), *combo) as server:
        host, port = server.address
        proc = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.ca_cert),
                               "-tls1_2", "-reconnect"], input=b"", capture_output=True, timeout=TIMEOUT)
        out = proc.stdout.decode(errors="replace")
        assert "Verify return code: 0 (ok)" in out, out[-2000:]
        assert out.count("Reused,") >= 4, out[-2000:]  # -reconnect connects 5 more times
        assert server.stop() == 0


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_redis_cli_tls(pki):
    if "--tls" not in subprocess.run(["redis-cli", "--help"], capture_output=True, text=True).stderr + \
            subprocess.run(["redis-cli", "--help"], capture_output=True, text=True).stdout:
        pytest.skip("this redis-cli was built without TLS")
    with ServerProcess(*tls_args(pki), "--protocol", "resp") as server:
        host, port = server.address
        base = ["redis-cli", "--tls", "--cacert", str(pki.ca_cert), "-h", "localhost", "-p", str(port)]
        assert subprocess.run([*base, "set", "k", "v"], capture_output=True, text=True,
                              timeout=TIMEOUT).stdout.strip() == "OK"
        assert subprocess.run([*base, "get", "k"], capture_output=True, text=True,
                              timeout=TIMEOUT).stdout.strip() == "v"
        assert server.stop() == 0


def test_redis_py_ssl(pki):
    redis = pytest.importorskip("redis", reason="redis-py is not installed")
    with ServerProcess(*tls_args(pki), "--protocol", "resp", "--dispatch", "pool") as server:
        host, port = server.address
        client = redis.Redis(host="localhost", port=port, ssl=True, ssl_ca_certs=str(pki.ca_cert))
        assert client.ping() is True
        client.set("k", "v" * 100_000)
        assert client.get("k") == b"v" * 100_000
        client.close()
        assert server.stop() == 0


def test_a_flood_of_bad_handshakes_is_counted_each_and_logged_once(pki):
    with ServerProcess(*tls_args(pki)) as server:
        for _ in range(20):
            with socket.create_connection(server.address, timeout=TIMEOUT) as plain:
                plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    assert plain.recv(100) == b""
                except ConnectionResetError:
                    pass
        assert tls_echo(server.address, client_context(pki)) == b"ping\n"
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 20
        logged = server.events_named("tls.handshake_failed")
        assert len(logged) == 1 and logged[0]["cause"] == "HTTP_REQUEST", logged


def test_tls13_tickets_resume_on_any_worker_and_after_hup(pki):
    """The context (and its ticket keys) is built before the fork: every worker, and the
    workers a HUP starts, accept the tickets the others issued (the certificate files are
    unchanged, so the HUP keeps the context)."""
    with ServerProcess(*tls_args(pki), "--dispatch", "prefork", "--workers", "2") as server:
        server.wait_events("worker.started", 2)
        context = client_context(pki)
        with tls_connect(server.address, context) as sock:
            sock.sendall(b"a\n")
            assert sock.recv(10) == b"a\n"  # the tickets arrive after the handshake
            session = sock.session
        for _ in range(4):  # two workers: both accept the ticket
            with tls_connect(server.address, context, session=session) as sock:
                sock.sendall(b"b\n")
                assert sock.recv(10) == b"b\n"
                assert sock.session_reused
        server.proc.send_signal(signal.SIGHUP)
        server.wait_events("worker.started", 4)
        server.wait_events("worker.exited", 2)  # only the workers the HUP started are left
        for _ in range(4):
            with tls_connect(server.address, context, session=session) as sock:
                sock.sendall(b"b\n")
                assert sock.recv(10) == b"b\n"
                assert sock.session_reused
        assert server.stop() == 0


# -- certificate reload on HUP -------------------------------------------------------------
def _install(pki, live, key=None) -> None:
    """Put ``pki``'s server certificate (and ``key``, default its own) where the server reads
    them, each file replaced whole (what certbot and most deploy tools do)."""
    for source, name in ((pki.server_cert, "server.pem"), (key or pki.server_key, "server.key")):
        tmp = live / f".{name}.tmp"
        tmp.write_bytes(source.read_bytes())
        os.replace(tmp, live / name)


def _served_cert(address, context) -> bytes:
    with tls_connect(address, context) as sock:
        sock.sendall(b"c\n")
        assert sock.recv(10) == b"c\n"
        return sock.getpeercert(binary_form=True)


def _der(path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


@pytest.mark.parametrize("scheme", ["inline", "threading", "multi-reactor", "prefork", "prefork-blocking", "forking"])
def test_hup_reloads_the_certificate_and_a_bad_one_keeps_the_old(pki, tmp_path, scheme):
    """HUP reads the certificate files again: new connections get the new certificate,
    an open one keeps its own; a key that does not match, or a missing file, is one line
    and the running certificate goes on being served; an unchanged file keeps the context
    (and the sessions it issued)."""
    (tmp_path / "renewed").mkdir()
    renewed = make_test_pki(tmp_path / "renewed")
    live = tmp_path / "live"
    live.mkdir()
    _install(pki, live)
    context = client_context(pki)
    context.load_verify_locations(str(renewed.ca_cert))  # trusts both CAs: the test reads which was served
    master = scheme.startswith("prefork")
    failed, reloaded = ("master.reload_failed", "master.reloaded") if master else ("tls.reload_failed", "tls.reloaded")
    args = ["--certfile", str(live / "server.pem"), "--keyfile", str(live / "server.key"), "--dispatch", scheme]
    with ServerProcess(*args, *(["--workers", "2"] if master else [])) as server:
        if master:
            server.wait_events("worker.started", 2)
        assert _served_cert(server.address, context) == _der(pki.server_cert)
        held = tls_connect(server.address, context)
        held.sendall(b"h\n")
        assert held.recv(10) == b"h\n"
        session = held.session
        # an unchanged certificate: the context, and its ticket keys, are kept
        server.proc.send_signal(signal.SIGHUP)
        if master:
            server.wait_events("master.reloaded", 1, timeout=TIMEOUT)
        else:
            server.wait_event("tls.reload_unchanged", TIMEOUT)
        with tls_connect(server.address, context, session=session) as sock:
            sock.sendall(b"r\n")
            assert sock.recv(10) == b"r\n" and sock.session_reused
        _install(renewed, live)
        server.proc.send_signal(signal.SIGHUP)
        server.wait_events(reloaded, 2 if master else 1, timeout=TIMEOUT)
        if master:
            server.wait_events("worker.exited", 4, timeout=TIMEOUT)  # two generations retired
        assert _served_cert(server.address, context) == _der(renewed.server_cert)
        if not master:  # an open connection keeps the certificate it was made with
            held.sendall(b"k\n")
            assert held.recv(10) == b"k\n" and held.getpeercert(binary_form=True) == _der(pki.server_cert)
        held.close()
        started = len(server.events_named("worker.started"))
        # the renewed certificate with another key: refused, the running one served on
        _install(renewed, live, key=pki.server_key)
        server.proc.send_signal(signal.SIGHUP)
        line = server.wait_event(failed, TIMEOUT)
        assert "keyfile" in line["reason"], line
        assert _served_cert(server.address, context) == _der(renewed.server_cert)
        # a missing key file: the same
        (live / "server.key").unlink()
        server.proc.send_signal(signal.SIGHUP)
        server.wait_events(failed, 2, timeout=TIMEOUT)
        assert _served_cert(server.address, context) == _der(renewed.server_cert)
        assert len(server.events_named("worker.started")) == started  # no worker was replaced
        assert server.stop() == 0
        assert server.stopped_event()["stats"]["errors"] == 0


def test_hup_with_a_key_under_another_password_keeps_the_old_and_never_logs_the_password(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "renewed").mkdir()
    renewed = make_test_pki(tmp_path / "renewed")
    live = tmp_path / "live"
    live.mkdir()
    _install(pki, live, key=pki.server_key_encrypted)
    key = serialization.load_pem_private_key(renewed.server_key.read_bytes(), password=None)
    other = tmp_path / "other-password.key"
    other.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.BestAvailableEncryption(b"another-password")))
    context = client_context(pki)
    args = ["--certfile", str(live / "server.pem"), "--keyfile", str(live / "server.key")]
    env = {"NETCORE_KEYFILE_PASSWORD": pki.key_password}
    with ServerProcess(*args, env=env) as server:
        assert _served_cert(server.address, context) == _der(pki.server_cert)
        _install(renewed, live, key=other)
        server.proc.send_signal(signal.SIGHUP)
        line = server.wait_event("tls.reload_failed", TIMEOUT)
        assert "keyfile" in line["reason"] and "the running certificate is kept" in line["reason"], line
        assert _served_cert(server.address, context) == _der(pki.server_cert)
        assert server.stop() == 0
    everything = json.dumps(server.events) + "\n".join(server.other_lines)
    assert pki.key_password not in everything and "another-password" not in everything


@pytest.mark.parametrize("where", ["flag", "env", "toml"])
def test_netcore_config_masks_the_keyfile_password(pki, tmp_path, where):
    """Every resolved setting is printed, the key's password as ``***`` (text and --json),
    wherever it came from; an unset one stays empty, so "not set" can still be read."""
    from netcore.testing.server_process import run_netcore

    secret = pki.key_password
    args = ["--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key_encrypted)]
    env = {}
    if where == "flag":
        args += ["--keyfile-password", secret]
    elif where == "env":
        env["NETCORE_KEYFILE_PASSWORD"] = secret
    else:
        (tmp_path / "netcore.toml").write_text(f'keyfile_password = "{secret}"\n')
    text = run_netcore("config", *args, env=env, cwd=str(tmp_path))
    assert text.returncode == 0, text.stderr
    line = next(x for x in text.stdout.splitlines() if x.startswith("keyfile_password "))
    assert '"***"' in line and secret not in text.stdout + text.stderr, line
    data = json.loads(run_netcore("config", "--json", *args, env=env, cwd=str(tmp_path)).stdout)
    assert data["keyfile_password"]["value"] == "***" and data["certfile"]["value"] == str(pki.server_cert)
    assert data["keyfile_password"]["source"] != "default"
    empty = tmp_path / "empty"
    empty.mkdir()
    plain = json.loads(run_netcore("config", "--json", cwd=str(empty)).stdout)
    assert plain["keyfile_password"]["value"] == ""
    # a wrong password: refused by config and --check-config as serve refuses it, in one
    # line that names the setting and not the password
    wrong = [a.replace(secret, "not-the-password") for a in args]
    env_wrong = {k: "not-the-password" for k in env}
    if where == "toml":
        (tmp_path / "netcore.toml").write_text('keyfile_password = "not-the-password"\n')
    for command in (["config"], ["serve", "--check-config"]):
        res = run_netcore(*command, *wrong, env=env_wrong, cwd=str(tmp_path))
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.returncode == 2 and len(lines) == 1 and "'keyfile_password'" in lines[0], res.stderr
        assert "not-the-password" not in res.stdout + res.stderr
