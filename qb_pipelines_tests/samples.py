"""Where the real QBO payloads live: ``shared/reference/samples`` beside the checkout.

CI clones the project with ``shared/`` beside it (``<dir>/main`` and ``<dir>/shared``); set
``QB_SHARED_DIR`` to point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("QB_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
SAMPLES = SHARED / "reference" / "samples"

if not SAMPLES.is_dir():  # fail loudly: conformance tests without samples would prove nothing
    raise RuntimeError(f"QBO samples not found at {SAMPLES}: put shared/ beside the checkout or set QB_SHARED_DIR")
