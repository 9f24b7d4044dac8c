"""The one compiled part of netcore-resp, optional: see netcore_resp/splitting.py.

``optional=True``: where it cannot be built (no C compiler, or a Python without its
headers, as Debian's python3 without python3-dev) the install goes on without it and the
plugin uses hiredis for the same job, slower. The metadata is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("netcore_resp._multibulk", ["src/netcore_resp/_multibulk.c"], optional=True)])
