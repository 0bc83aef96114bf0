"""`python -m backend.bench`: see `backend.bench` for what it measures."""

from backend.bench.run import main

raise SystemExit(main())
