"""`python -m vmsim.trace [replay|maps|demo] ...` (no arguments: the demo)."""

import sys

from .cli import main

sys.exit(main())
