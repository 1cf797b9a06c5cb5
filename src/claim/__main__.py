"""``python -m claim``: the same as the ``claim`` command."""

import sys

from claim.console import main

sys.exit(main())
