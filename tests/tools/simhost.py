"""Build a simulated bootc composefs host tree: ``python3 tests/tools/simhost.py build DIR --preset demo``.

The implementation is the ``simhost`` package next to this file (``tests/tools/simhost/``); this
script only runs its command line (``simhost/cli.py`` documents it). Python API::

    import simhost
    result = simhost.build_host("/tmp/host", simhost.preset_spec("demo"))
"""

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from simhost.cli import main  # pylint: disable=import-self

    sys.exit(main())
