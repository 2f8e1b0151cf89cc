"""``python -m qklstm ...`` works like the ``qklstm`` command (torchrun -m qklstm too)."""

from .cli import main

raise SystemExit(main())
