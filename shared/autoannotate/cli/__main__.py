"""``python -m autoannotate.cli ...``: the ``autoannotate`` command without the console script."""

import sys

from . import main

sys.exit(main())
