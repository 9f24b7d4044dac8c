"""The reactor core: event loop, poller interface, connection, output buffer, timers.

These modules never import pluggy: hooks assemble a server, then plain method calls run
it. ``tests/test_no_pluggy_on_hot_path.py`` in core checks this.
"""
