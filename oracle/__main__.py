"""``python -m oracle`` is ``bme-oracle``."""

import sys

from oracle.cli import main

sys.exit(main())
