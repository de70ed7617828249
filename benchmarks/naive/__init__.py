"""The naive faithful path of the benchmark: what the authors' code does, for side-by-side timing.

Per-sample NumPy anomaly synthesis on the host (``synthesis``, ``ops``), batch-1 inference with
autograd on (``inference``), the official MVTec AUPRO (``metrics``); the network itself is the
library's ``TransFusionUNet(attention="naive")`` in contiguous NCHW.
"""

from benchmarks.naive.inference import reverse_process_one_by_one
from benchmarks.naive.metrics import aupro_reference
from benchmarks.naive.synthesis import NaiveSynthesizer

__all__ = ["NaiveSynthesizer", "aupro_reference", "reverse_process_one_by_one"]
