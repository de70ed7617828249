"""TransFusion AD: transparency-based diffusion for surface anomaly detection, in Kedro."""

__version__ = "0.1.0"
