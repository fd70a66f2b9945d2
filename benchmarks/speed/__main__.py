"""Entry point of ``python -m benchmarks.speed``."""

import sys

from .cli import main

sys.exit(main())
