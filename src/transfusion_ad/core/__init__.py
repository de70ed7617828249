"""The TransFusion method in pure PyTorch (no Kedro import anywhere in this package)."""
