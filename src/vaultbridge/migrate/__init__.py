"""Moving from HashiCorp's Vault Secrets Operator (VSO): `vaultbridge migrate`.

- `vso`: what VSO's objects and the Secrets it writes look like (group, kinds, fields, labels).
- `convert`: pure conversion of one VSO document into a vaultbridge object, with a verdict.
- `templates`: the Go-template forms that translate mechanically into Jinja2.
- `inputs`: reading files, directories, stdin and a live cluster into documents.
- `report`: the per-object report (rich table or JSON) and the exit code.
- `adopt`: the pure decision to take over a Secret VSO created, without rotating it.
- `cli`: the `vaultbridge migrate` command.

VaultAuthGlobal precedence lives in `vaultbridge.api.auth_global`. Nothing here imports the
controllers; the operator connects `adopt.decide_adoption` where it
decides destination ownership.
"""
