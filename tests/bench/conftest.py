"""bench/ is a folder of scripts, not a package: its compare_* helpers import each other by bare name."""
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
