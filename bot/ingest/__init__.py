"""Getting shop data in: the importer (`csv_format` reads a CSV, `parsers` turn its rows into
records, `importer` checks and writes them through each domain's writer), the file formats in
front of it (`formats`, `xlsx`, `files`), and connectors."""
