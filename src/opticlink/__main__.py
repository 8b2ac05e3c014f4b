from opticlink.cli import main

raise SystemExit(main())
