"""Errors that the command line turns into one line on stderr and exit status 2.

A user error (a bad setting, an impossible combination, a plugin that cannot load when it
is selected) is not a crash: it must not print a traceback.
"""


import difflib
from typing import Iterable


def did_you_mean(word: str, known: Iterable[str], spell=str) -> str:
    """``" (did you mean 'workers'?)"`` for the known name nearest a typo, else "".

    One place for every error that refuses a name (a setting, a choice, a flag): a user
    who typed ``--dispatch prefrok`` is shown ``prefork`` rather than left to read the
    whole list. ``spell`` writes the suggestion as the user would type it (a flag, a
    variable name).
    """
    match = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {spell(match[0])!r}?)" if match else ""


class UsageError(Exception):
    """A problem the user can fix by changing the configuration; exit status 2."""

    exit_status = 2


class SettingError(UsageError):
    """A setting has an unknown name or a value outside its allowed values."""

    def __init__(self, name: str, value: object, allowed: str, source: str = "", hint: str = ""):
        self.name, self.value, self.allowed, self.source = name, value, allowed, source
        where = f" (from {source})" if source else ""
        super().__init__(f"setting {name!r}{where}: {value!r} is not allowed{hint}; allowed: {allowed}")


class AssemblyError(UsageError):
    """The selected implementations cannot work together, or one of them cannot load."""


class InUse(UsageError):
    """What the configuration names is held by a running server: an address listened on,
    a pid file naming a live master. ``serve`` refuses to start; ``--check-config`` only
    notes it, since during a deploy the running server holds exactly these."""
