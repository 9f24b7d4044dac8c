"""The echo protocol (RFC 862) for netcore."""
