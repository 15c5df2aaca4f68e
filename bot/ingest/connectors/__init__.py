"""Connectors to where a shop's stock already lives: its own database (polled), Shopify and
WooCommerce (webhooks). Each one writes through the same services as the CSV import and the HTTP
API (`bot/inventory/stock.py`, `bot/inventory/products.py`, `bot/shop/`), so first levels,
crossings, coalescing and the ledger work the same whatever the source. docs/connectors.md."""
