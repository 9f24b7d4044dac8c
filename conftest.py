"""Fixtures shared by every test suite of the repository (host, plugins, integration)."""

pytest_plugins = ["netcore.testing.fixtures"]
