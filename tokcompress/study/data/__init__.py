"""Bundled sample images and their JSONL (regenerate with ``python -m tokcompress.study.data.make_samples``)."""
