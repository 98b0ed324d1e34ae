"""`python -m micmon_cli`: the same as the `micmon` script."""

from micmon_cli.app import main

main()
