"""``python -m pipeline`` is the same as the ``newswire`` command."""

from pipeline.cli import main

main()
