"""api layer of gpufleet (see DESIGN.md)."""
