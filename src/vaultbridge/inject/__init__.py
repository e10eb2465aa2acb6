"""Inject mode: secrets written into pods as in-memory files, never a Kubernetes Secret."""
