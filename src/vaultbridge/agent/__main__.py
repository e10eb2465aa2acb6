"""`python -m vaultbridge.agent [--once]`: the agent without the operator's command line."""

import sys

from vaultbridge.agent.main import main

sys.exit(main())
