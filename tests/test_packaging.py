"""Packaging as a user of published wheels meets it.

``python -m build`` makes a wheel of every distribution (each from a copy of its directory,
so the shared tree gets no ``build/`` or ``*.egg-info``); the test reads each wheel's
metadata and entry points as pip and importlib.metadata would, then installs the wheels
the way a user would (``pip install netcore-server``, and ``netcore-host netcore-resp``
alone) into an empty target and runs the real ``netcore`` from there.

Needs ``build`` (``pip install build``); builds run isolated (setuptools from the index
pip is configured with), two at a time.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from netcore import __version__
from netcore.plugins import host_mismatch
from netcore.testing.server_process import ServerProcess
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]

#: distribution -> (directory, the ``netcore`` entry points it must declare)
DISTRIBUTIONS = {
    "netcore-host": ("core", {}),
    "netcore-pollers": ("plugins/netcore-pollers", {"pollers": "netcore_pollers.plugin"}),
    "netcore-acceptors": ("plugins/netcore-acceptors", {"acceptors": "netcore_acceptors.plugin"}),
    "netcore-dispatch": ("plugins/netcore-dispatch", {"dispatch": "netcore_dispatch.plugin"}),
    "netcore-echo": ("plugins/netcore-echo", {"echo": "netcore_echo.plugin"}),
    "netcore-http": ("plugins/netcore-http", {"http": "netcore_http.plugin"}),
    "netcore-resp": ("plugins/netcore-resp", {"resp": "netcore_resp.plugin"}),
    "netcore-bench": ("plugins/netcore-bench", {"bench": "netcore_bench.plugin"}),
    "netcore-server": ("plugins/netcore-server", {}),
    "netcore-uppercase": ("examples/netcore-uppercase", {"uppercase": "netcore_uppercase.plugin"}),
}
#: The distributions the install tests install; their third-party requirements come from pip's index.
INSTALLED = ("netcore-server", "netcore-host", "netcore-pollers", "netcore-acceptors", "netcore-dispatch",
             "netcore-echo", "netcore-resp")

pytestmark = pytest.mark.slow

build = pytest.importorskip("build", reason="the packaging test runs `python -m build`: pip install build")


def _pip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _build_one(dist: str, out: Path, work: Path) -> Path:
    src = work / dist
    shutil.copytree(REPO / DISTRIBUTIONS[dist][0], src,
                    ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".tox"))
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{dist}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    wheels = list(out.glob(f"{dist.replace('-', '_')}-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    work = tmp_path_factory.mktemp("sources")
    with ThreadPoolExecutor(2) as pool:  # two CPUs, shared: no more than two builds at once
        built = dict(zip(DISTRIBUTIONS, pool.map(lambda d: _build_one(d, out, work), DISTRIBUTIONS)))
    return built


def _metadata(wheel: Path) -> tuple[email.message.Message, str, zipfile.ZipFile]:
    archive = zipfile.ZipFile(wheel)
    info = next(n.split("/")[0] for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    meta = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    try:
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    except KeyError:
        entry_points = ""
    return meta, entry_points, archive


def _entry_points(text: str) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            group = line.strip("[]")
            groups[group] = {}
        elif "=" in line:
            name, _, value = line.partition("=")
            groups[group][name.strip()] = value.strip()
    return groups


def test_every_wheel_has_the_metadata_people_expect(wheels):
    next_minor = Version(f"{Version(__version__).major}.{Version(__version__).minor + 1}")
    for dist, wheel in wheels.items():
        meta, entry_points, archive = _metadata(wheel)
        assert meta["Name"] == dist and meta["Version"] == __version__, (dist, meta["Version"])
        assert meta["Requires-Python"] == ">=3.10", dist
        classifiers = meta.get_all("Classifier") or []
        for wanted in ("Programming Language :: Python :: 3.10", "Programming Language :: Python :: 3.13",
                       "Operating System :: POSIX :: Linux"):
            assert wanted in classifiers, (dist, classifiers)
        assert meta["License"] == "MIT" or "MIT" in (meta.get("License-Expression") or ""), dist
        assert meta["Summary"] and meta.get_payload().strip(), f"{dist}: no description"
        requires = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
        # Every pin on another netcore distribution admits this version and refuses the next
        # minor (netcore-server[all] names its own extras, with no version).
        ours = [r for r in requires if r.name.startswith("netcore-") and r.name != dist]
        for req in ours:
            assert req.specifier.contains(__version__) and not req.specifier.contains(next_minor), (dist, str(req))
        if dist != "netcore-host":
            assert any(r.name == "netcore-host" and r.marker is None for r in requires), (dist, requires)
        groups = _entry_points(entry_points)
        assert groups.get("netcore", {}) == DISTRIBUTIONS[dist][1], (dist, groups)
        names = archive.namelist()
        for target in groups.get("netcore", {}).values():  # the module an entry point names is in the wheel
            assert target.replace(".", "/") + ".py" in names, (dist, target)
        if dist == "netcore-host":
            assert groups["console_scripts"] == {"netcore": "netcore.cli:_entry"}
            assert "netcore/reactor/connection.py" in names and "netcore/testing/server_process.py" in names
        if dist == "netcore-bench":
            assert any(n.startswith("netcore_bench/loadgen/") and n.endswith(".c") for n in names)
        if dist == "netcore-server":
            assert {r.name for r in requires if r.marker is None} == {
                "netcore-host", "netcore-pollers", "netcore-acceptors", "netcore-dispatch", "netcore-echo"}
            assert set(meta.get_all("Provides-Extra")) == {"http", "resp", "bench", "all"}
            assert not [n for n in names if not n.startswith("netcore_server-")], names


def test_the_host_accepts_the_pins_it_was_built_with(wheels, tmp_path):
    for dist, wheel in wheels.items():
        with zipfile.ZipFile(wheel) as archive:
            members = [n for n in archive.namelist() if ".dist-info/" in n]
            archive.extractall(tmp_path / dist, members)
        info = next((tmp_path / dist).glob("*.dist-info"))
        import importlib.metadata

        assert host_mismatch(importlib.metadata.PathDistribution(info)) == "", dist


@pytest.fixture(scope="module")
def third_party(wheels, tmp_path_factory) -> Path:
    """Wheels of the libraries the installed distributions require (as their metadata says), from pip's index.

    Only these come from the index: every netcore name is installed from the wheels just
    built (``--no-index``), never from a published release.
    """
    wanted = set()
    for dist in INSTALLED:
        for line in _metadata(wheels[dist])[0].get_all("Requires-Dist") or []:
            req = Requirement(line)
            if not req.name.startswith("netcore-") and (req.marker is None or req.marker.evaluate({"extra": ""})):
                wanted.add(f"{req.name}{req.specifier}")
    dest = tmp_path_factory.mktemp("third-party")
    result = _pip("download", "--quiet", "--dest", str(dest), *sorted(wanted))
    if result.returncode != 0:
        pytest.skip(f"cannot download {', '.join(sorted(wanted))}: {result.stderr.strip()[-300:]}")
    return dest


def _install(target: Path, wheels: dict[str, Path], third_party: Path, *names: str) -> None:
    links = {str(w.parent) for w in wheels.values()}
    args = ["install", "--quiet", "--no-index", "--target", str(target), "--find-links", str(third_party)]
    for link in sorted(links):
        args += ["--find-links", link]
    result = _pip(*args, *names)
    assert result.returncode == 0, result.stderr[-3000:]


#: Runs ``netcore`` from the target directory alone: ``-S`` keeps site-packages (and the
#: checkout's editable installs) out, so only what the target holds is seen.
RUN_FROM_TARGET = "import sys; sys.path.insert(0, sys.argv[1]); from netcore.cli import main; sys.exit(main(sys.argv[2:]))"


def _netcore_from(target: Path) -> list[str]:
    return [sys.executable, "-S", "-c", RUN_FROM_TARGET, str(target)]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("NETCORE_")}


def test_netcore_server_alone_gives_a_working_echo_server(wheels, third_party, tmp_path):
    target = tmp_path / "site"
    _install(target, wheels, third_party, "netcore-server")
    installed = sorted(p.name.split("-")[0] for p in target.glob("netcore_*.dist-info"))
    assert installed == ["netcore_acceptors", "netcore_dispatch", "netcore_echo", "netcore_host",
                         "netcore_pollers", "netcore_server"]
    server = ServerProcess(executable=_netcore_from(target), cwd=str(tmp_path))
    server.env = _clean_env()
    with server:
        assert (server.started["poller"], server.started["protocol"]) == ("epoll-lt", "echo")
        with socket.create_connection(server.address, timeout=10) as sock:
            sock.sendall(b"hello\n")
            assert sock.recv(100) == b"hello\n"
        assert server.stop() == 0


def test_host_and_resp_alone_say_what_to_install(wheels, third_party, tmp_path):
    target = tmp_path / "site"
    _install(target, wheels, third_party, "netcore-host", "netcore-resp")
    result = subprocess.run([*_netcore_from(target), "serve", "--protocol", "resp", "--bind", "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=60, env=_clean_env(), cwd=str(tmp_path),
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "no poller is installed: pip install netcore-pollers (or netcore-server for the defaults)" in result.stderr
    assert "pip install netcore-dispatch" in result.stderr and "Traceback" not in result.stderr
