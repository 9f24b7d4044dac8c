"""netcore dispatchers: where work runs."""
