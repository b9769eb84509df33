"""`python -m ttscale ...`: the same CLI as the `ttscale` command, for environments without its script."""

import sys

from ttscale.cli import main

sys.exit(main())
