"""``python -m spikingrnn.bench``: see :mod:`spikingrnn.bench.cli`."""
import sys

from .cli import main

sys.exit(main())
