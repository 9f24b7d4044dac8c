"""Contract test suites plugin authors subclass, and the helpers they run on.

``poller_contract``, ``protocol_contract``, ``dispatcher_contract``, ``acceptor_contract``:
one base class per family (not named ``Test*``: collected through subclasses).
``server_process`` runs real ``netcore serve`` processes and waits on their events,
``clients`` holds blocking clients with deadlines, ``schemes`` lists the installed
dispatch schemes, ``fixtures`` is a pytest plugin (``pytest_plugins``).
"""
