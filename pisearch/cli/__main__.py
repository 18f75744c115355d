"""``python -m pisearch.cli ARGS``: the same as the ``pisearch`` script."""

from pisearch.cli import main

main()
