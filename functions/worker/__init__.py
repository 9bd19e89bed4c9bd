"""Worker function: drains due work for the invocation's remaining time minus a margin."""
