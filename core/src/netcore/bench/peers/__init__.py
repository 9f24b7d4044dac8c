"""Reference servers the bench measures netcore against, in the same run."""
