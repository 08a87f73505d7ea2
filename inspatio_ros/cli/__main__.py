"""``python -m inspatio_ros.cli``: the ``inspatio-ros`` command."""
import sys

from . import main

sys.exit(main())
