"""RESP (the Redis protocol) for netcore: an in-memory keyspace behind Redis's wire format."""
