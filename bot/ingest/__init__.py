"""Ways stock, catalog and orders come in from outside (files and connectors)."""
