"""``python -m workshop.evaluation`` (``make eval``)."""

from workshop.evaluation.report import main

raise SystemExit(main())
