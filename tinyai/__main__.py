"""``python -m tinyai ...`` is the ``tinyai`` console command."""
from tinyai.cli import main

raise SystemExit(main())
