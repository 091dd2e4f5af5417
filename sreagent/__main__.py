"""``python -m sreagent`` is the ``sreagent`` command."""

import sys

from sreagent.cli import main

sys.exit(main())
