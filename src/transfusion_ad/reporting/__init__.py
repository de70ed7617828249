"""Figures and reports: heat-map overlays on one fixed scale (overlays), the evaluation's figures
(figures, evaluation_figures) and the per-category Markdown report (report)."""
