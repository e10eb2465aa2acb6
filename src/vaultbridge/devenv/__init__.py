"""devenv."""
