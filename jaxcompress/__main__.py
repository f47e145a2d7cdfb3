"""``python -m jaxcompress`` is the same as the ``jaxcompress`` command."""

from jaxcompress.cli import main

raise SystemExit(main())
