"""``python -m course_lib`` is the ``course`` command."""

from .cli import main

raise SystemExit(main())
