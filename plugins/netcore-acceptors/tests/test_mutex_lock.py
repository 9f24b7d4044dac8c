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


def test_ringing_a_helper_that_has_returned_does_not_break_the_stop(loop):
    # The race under load: stop() sets the stop flag, then rings the helper; a helper
    # woken in between for another reason sees the flag, returns and closes its end of
    # the pipe, and the ring's write fails with EPIPE. That error broke off the worker's
    # stop (the worker never exited). Here the helper returns first, deterministically.
    from netcore.stats import WorkerStats
    from netcore_acceptors.mutex import MutexAcceptor

    acceptor = MutexAcceptor(config=None)
    listeners = acceptor.bind(["127.0.0.1:0"], 16)
    try:
        acceptor.start(loop, listeners, lambda sock, _peer: sock.close(), WorkerStats())
        turn = acceptor.turns[0]
        turn.stopped.set()
        turn._ring()
        turn._thread.join(10)
        assert not turn._thread.is_alive()
        turn.stopped.clear()  # the helper has returned on the flag; now the stop itself
        turn._ring()  # no reader left: must not raise
        acceptor.stop_accepting()  # the loop is not running: stops the turn here
        assert all(channel.closed for channel in turn.channels)
    finally:
        acceptor.close(listeners)
