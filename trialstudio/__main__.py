from trialstudio.cli import main

raise SystemExit(main())
