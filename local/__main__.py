"""``python -m local up`` (``make up``) and ``python -m local token`` (kubectl's exec credential): see local.up."""

from local.up import main

raise SystemExit(main())
