"""Contract test suites plugin authors subclass."""
