"""Durations are bounded twice: a setting refuses a value no one means (``inf``, ``1e12``
seconds) at start, and a poller never hands the kernel a timeout it cannot take.

Without the first, ``--proxy-timeout inf`` passed ``serve`` and ``--check-config`` and the
first connection's deadline then killed the reactor (``OverflowError`` in ``epoll.poll``).
Without the second, any far deadline -- a plugin's timer, a future setting -- would do the
same.
"""

from __future__ import annotations

import math
import socket
import subprocess
import sys

import pytest
from netcore.errors import SettingError
from netcore.plugins import PluginHost
from netcore.reactor.poller import EVENT_READ, MAX_POLL_TIMEOUT

#: The duration settings of the host and the bundled plugins, with the values an
#: operator would write for each (all of them valid before the bounds, and still).
CORE_DURATIONS = {
    "graceful_timeout": ("0", "30", "2.5", "1e3", "86400"),
    "timeout": ("0", "30", "600", "3600.0"),
    "linger_timeout": ("0", "2", "0.5", "60"),
    "tls_handshake_timeout": ("0.001", "10", "60"),
    "proxy_timeout": ("0.001", "5", "30.0"),
}
ABSURD = ("inf", "Infinity", "1e400", "1e12", "-inf")


@pytest.fixture(scope="module")
def settings():
    return PluginHost().settings


def is_duration(setting) -> bool:
    return setting.metavar == "SECONDS" or setting.name.endswith(("timeout", "_interval", "_seconds"))


def test_every_duration_setting_has_a_finite_upper_bound(settings):
    durations = [s for s in settings if is_duration(s)]
    assert {s.name for s in durations} >= set(CORE_DURATIONS)
    unbounded = [s.name for s in durations if s.maximum is None or not math.isfinite(s.maximum)]
    assert not unbounded, f"duration settings without an upper bound: {unbounded}"


@pytest.mark.parametrize("name", sorted(CORE_DURATIONS))
def test_absurd_durations_are_refused_and_sensible_ones_kept(settings, name):
    setting = settings.get(name)
    for raw in ABSURD:
        with pytest.raises(SettingError, match=f"setting '{name}'"):
            setting.parse(raw, f"--{name.replace('_', '-')}")
    for raw in CORE_DURATIONS[name]:
        assert setting.parse(raw, "test") == float(raw)
    assert "from" in setting.allowed() and " to " in setting.allowed(), setting.allowed()


@pytest.mark.parametrize(("args", "env"), [
    (["--proxy-protocol", "v1", "--proxy-timeout", "1e12"], {}),
    (["--tls-handshake-timeout", "inf"], {}),
    ([], {"NETCORE_GRACEFUL_TIMEOUT": "1e400"}),
    (["--set", "linger_timeout=inf"], {}),
])
@pytest.mark.parametrize("command", (["serve", "--check-config"], ["serve"]))
def test_serve_refuses_them_at_start_with_exit_2_and_one_line(command, args, env):
    done = subprocess.run([sys.executable, "-m", "netcore", *command, "--bind", "127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                          env={**_environ(), **env})
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("netcore: error: setting '"), done.stderr
    assert "a number from" in lines[0], lines[0]


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("NETCORE_")}


# -- the pollers ------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", (1e12, 1e400, MAX_POLL_TIMEOUT * 10, 2.0**31))
def test_a_poller_takes_any_far_timeout(make_poller, timeout):
    """``(fd, mask)`` comes back at once for a ready fd: the far timeout was clamped, not
    handed to the kernel (epoll and poll take at most 2**31-1 ms; select a time_t)."""
    poller = make_poller()
    a, b = socket.socketpair()
    try:
        poller.register(a.fileno(), EVENT_READ)
        b.send(b"x")
        assert poller.poll(timeout) == [(a.fileno(), EVENT_READ)]
    finally:
        poller.unregister(a.fileno())
        poller.close()
        a.close()
        b.close()


def test_a_far_timer_does_not_kill_the_loop(loop):
    """The loop waits for its next timer; a timer a lifetime away (or never) must leave it
    waiting, not dead: the rest of the loop still runs."""
    a, b = socket.socketpair()
    seen = []

    def readable(_mask):
        seen.append(a.recv(16))
        loop.stop()

    try:
        loop.call_later(1e12, seen.append, "never")
        loop.call_later(math.inf, seen.append, "never either")
        loop.register(a.fileno(), EVENT_READ, readable)
        b.send(b"woken")
        loop.run_forever()  # raised OverflowError in the poller before the clamp
        loop.unregister(a.fileno())
    finally:
        a.close()
        b.close()
    assert seen == [b"woken"]
