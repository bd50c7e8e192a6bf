"""``python -m omnisync`` runs the command-line interface."""

from omnisync.cli.main import main

raise SystemExit(main())
