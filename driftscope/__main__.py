"""``python -m driftscope``: the same CLI as the ``driftscope`` console script."""

from driftscope.cli import main

main()
