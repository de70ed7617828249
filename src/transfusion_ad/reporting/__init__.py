"""Figures and reports: overlays, synthetic-anomaly previews, score plots, per-category report."""
