"""``python -m torch_impl …`` is the ``gfl`` command line (see :mod:`torch_impl.detector.cli`)."""

import sys

from .detector.cli import main

if __name__ == "__main__":
    sys.exit(main())
