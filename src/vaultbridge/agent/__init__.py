"""`vaultbridge agent`: inject mode's in-pod half (see `main.py`).

Light on purpose: it imports the webhook↔agent contract (`inject/config.py`), the spec models,
the pure `secrets/` pipeline, the Vault client and `fetch.py` — nothing of the operator
(`kube/`, `engine/`, `controllers/`, `guard/`, `operator.py`).
"""
