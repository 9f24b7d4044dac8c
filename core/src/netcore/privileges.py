"""``--user``/``--group``: give up root once the listening sockets are bound.

Binding a port below 1024 needs root (or CAP_NET_BIND_SERVICE); serving does not, and
a server that runs application code as root turns every bug into a root compromise.
So the switch happens right after binding and before any worker starts or any request
is read: group first (a process that has dropped root can no longer change its group),
supplementary groups reset to the target user's, then the user.
"""

from __future__ import annotations

import grp
import os
import pwd

from netcore.errors import SettingError


def _uid(user: str) -> tuple[int, int, str]:
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        raise SettingError("user", user, "a user name or uid of this machine", "--user") from None
    return entry.pw_uid, entry.pw_gid, entry.pw_name


def _gid(group: str) -> int:
    try:
        return grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
    except (KeyError, ValueError):
        raise SettingError("group", group, "a group name or gid of this machine", "--group") from None


def check_identity(config) -> None:
    """At start (and ``--check-config``): the names exist, and this process may switch."""
    user, group = str(config.get("user", "") or ""), str(config.get("group", "") or "")
    if user:
        uid = _uid(user)[0]
        if uid != os.geteuid() and os.geteuid() != 0:
            raise SettingError("user", user, "the current user, unless started as root", "--user")
    if group:
        gid = _gid(group)
        if gid != os.getegid() and os.geteuid() != 0:
            raise SettingError("group", group, "the current group, unless started as root", "--group")


def switch_identity(config, socket_paths=()) -> None:
    """Become ``--user``/``--group`` (after binding); nothing if neither is set.

    ``socket_paths``, the Unix sockets the server created, are first given to that user
    and group (as gunicorn does): created by root, with root's umask, the user the server
    runs as could not connect to its own socket, and its clients -- run as that user, or
    in its group -- neither.
    """
    user, group = str(config.get("user", "") or ""), str(config.get("group", "") or "")
    if not user and not group:
        return
    check_identity(config)
    uid, user_gid, name = _uid(user) if user else (os.geteuid(), os.getegid(), "")
    gid = _gid(group) if group else user_gid
    if os.geteuid() == 0:
        for path in socket_paths:
            os.chown(path, uid if user else -1, gid)
        if user:
            os.initgroups(name, gid)
        else:
            os.setgroups([gid])
        os.setgid(gid)
    if user and uid != os.geteuid():
        os.setuid(uid)
