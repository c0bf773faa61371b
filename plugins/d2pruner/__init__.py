"""tokcompress_d2pruner plugin (being written)."""
