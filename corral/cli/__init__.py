"""The `corral` command line, built on corral.client."""
