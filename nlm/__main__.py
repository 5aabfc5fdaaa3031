"""`python -m nlm` runs the command-line interface."""

from nlm.cli import main

main()
