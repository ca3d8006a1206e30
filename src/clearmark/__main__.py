"""``python -m clearmark`` is the ``clearmark`` command."""

import sys

from ._cli import main

sys.exit(main())
