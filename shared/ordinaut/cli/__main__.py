"""``python -m ordinaut.cli``: the ``ordinaut`` command (how ``ordinaut dev`` starts its children)."""

import sys

from ordinaut.cli import main

sys.exit(main())
