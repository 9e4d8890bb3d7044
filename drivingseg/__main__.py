"""``python -m drivingseg`` is the ``drivingseg`` command."""

import sys

from drivingseg.cli.main import main

sys.exit(main())
