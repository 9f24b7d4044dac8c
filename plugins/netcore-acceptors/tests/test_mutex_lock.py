"""The mutex acceptor's lock on its own: a real lock file, real record locks, real threads."""

from __future__ import annotations

import os
import threading

from netcore_acceptors.mutex import AcceptLock


def test_a_lock_taken_while_the_acceptor_closes_is_released_without_error():
    # A worker that exits (its app refused to start, a stop) closes the acceptor while its
    # helper thread may hold the lock: that thread's release must not raise (it used to,
    # EBADF, printing a traceback from the thread) and must free this process's turn.
    lock = AcceptLock()
    assert lock.acquire_for_thread(threading.Event())
    lock.acquire_for_process()
    assert lock.holder_pid() is None  # our own lock: F_GETLK reports other processes only
    lock.close()
    lock.release()
    assert lock.threads.acquire(blocking=False), "the thread lock was left taken"


def test_the_record_lock_keeps_another_process_out_until_released():
    lock = AcceptLock()
    try:
        assert lock.acquire_for_thread(threading.Event())
        lock.acquire_for_process()
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child asks who holds it, then reports
            try:
                os.write(writer, str(lock.holder_pid() or 0).encode())
            finally:
                os._exit(0)
        os.close(writer)
        seen = os.read(reader, 32)
        os.close(reader)
        os.waitpid(pid, 0)
        assert int(seen) == os.getpid()
        lock.release()
        assert lock.holder_pid() is None
    finally:
        lock.close()
