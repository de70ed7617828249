"""The benchmarks' code (benchmarks/ at the project root) is importable by these tests, whichever
of them runs first."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
