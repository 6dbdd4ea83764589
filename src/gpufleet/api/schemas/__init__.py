"""Wire schemas (pydantic); the records in gpufleet.model stay stdlib-only."""
