"""Where the operator keeps state outside its memory: persisted Vault tokens in Kubernetes
Secrets (token_store.py). Nothing here decides a reconcile; controllers/ do."""
