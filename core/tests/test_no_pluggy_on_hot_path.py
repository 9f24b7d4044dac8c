"""The reactor core must not import pluggy: hooks assemble, plain calls run."""

import ast
import pathlib
import subprocess
import sys

import netcore

REACTOR = pathlib.Path(netcore.__file__).parent / "reactor"


def test_reactor_modules_do_not_import_pluggy_at_run_time():
    code = (
        "import sys\n"
        "import netcore.reactor.loop, netcore.reactor.connection, netcore.reactor.worker\n"
        "import netcore.reactor.poller, netcore.reactor.timers, netcore.reactor.waker\n"
        "print('pluggy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_reactor_sources_never_name_pluggy_or_hooks():
    for path in sorted(REACTOR.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith("pluggy"), f"{path.name} imports {name}"
                assert name not in ("netcore.plugins", "netcore.hookspecs"), f"{path.name} imports {name}"
