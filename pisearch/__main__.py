"""``python -m pisearch ARGS``: the same as the ``pisearch`` script."""

from pisearch.cli import main

main()
