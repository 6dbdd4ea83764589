"""agent layer of gpufleet (see DESIGN.md)."""
