"""``python -m autoannotate ...``: the ``autoannotate`` command without the console script."""

import sys

from .cli import main

sys.exit(main())
