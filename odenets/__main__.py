"""``python -m odenets``: the ``odenets`` command."""
import sys

from odenets.app.commands.cli import main

sys.exit(main())
