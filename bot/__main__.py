"""``python -m bot`` is the same as the ``diplobot`` command."""

from bot.cli import main

raise SystemExit(main())
