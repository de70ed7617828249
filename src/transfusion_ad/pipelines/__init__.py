"""One folder per pipeline: nodes.py (thin, calling the core library) and pipeline.py."""
