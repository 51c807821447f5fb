"""The catalog service: datasets, folders and items, and the transactional outbox of item events."""
