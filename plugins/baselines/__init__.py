"""tokcompress_baselines plugin (being written)."""
