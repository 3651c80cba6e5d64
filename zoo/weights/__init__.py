"""Finding, verifying and reading pretrained weight files."""
