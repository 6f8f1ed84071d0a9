"""``python -m spooler`` runs the fspl command line."""

from spooler.cli import main

main()
