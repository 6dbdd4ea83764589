"""cli layer of gpufleet (see DESIGN.md)."""
