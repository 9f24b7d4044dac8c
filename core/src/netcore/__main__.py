"""``python -m netcore`` runs the command line."""

from netcore.cli import _entry

_entry()
