"""Ingest stage: corpus snapshot files to the documents_raw table plus quarantine."""
