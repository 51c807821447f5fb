"""The upload service: streams binaries into the blob store, registers them in the catalog, and
streams them (or their thumbnails) back out."""
