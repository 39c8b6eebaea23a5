"""`python -m server.admin`: the routing admin CLI."""

from server.admin.cli import main

raise SystemExit(main())
