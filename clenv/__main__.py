"""``python -m clenv``: the ``clenv`` command."""

import sys

from clenv.cli import main

sys.exit(main())
