"""HQ service: ingest, documents, reconciliation."""
