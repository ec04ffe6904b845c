"""``python -m odenets``: the ``odenets`` command."""
import sys

from odenets.app.cli import main

sys.exit(main())
