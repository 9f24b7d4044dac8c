"""An example third-party protocol for netcore: each line comes back upper-cased."""
