"""Getting shop data in: file formats (CSV, xlsx) in front of the importer, and connectors."""
