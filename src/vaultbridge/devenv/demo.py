"""`make demo`: bring the environment up and show how to use it."""

from __future__ import annotations

import sys

from . import environment
from .errors import DevEnvError


def main() -> int:
    try:
        state = environment.up(log=lambda m: print(m, file=sys.stderr))
    except DevEnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for row in environment.status(state):
        print(
            f"  {row['component']:<24} {row['state']:<8} port={row['port']} "
            f"version={row['version']}"
        )
    print()
    print("The environment keeps running. Use it with:")
    print('  eval "$(.venv/bin/vaultbridge dev env)"; kubectl get ns')
    print("Stop it with: .venv/bin/vaultbridge dev down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
