"""`python -m xrouter_tui` runs the same command line as `xrouter-tui`."""

from xrouter_tui.entry import main

raise SystemExit(main())
