"""``python -m claim``: the same as the ``claim`` command."""

import sys

from claim.cli import main

sys.exit(main())
