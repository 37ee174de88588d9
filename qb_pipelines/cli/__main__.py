"""``python -m qb_pipelines.cli``: the same as the ``qb-pipelines`` console script."""

from qb_pipelines.cli import main

main()
