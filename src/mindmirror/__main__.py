"""``python -m mindmirror`` runs the CLI."""

from mindmirror.cli import main

main()
