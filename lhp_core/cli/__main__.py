"""``python -m lhp_core.cli``: the ``lhp`` command line."""
import sys

from lhp_core.cli import main

sys.exit(main())
