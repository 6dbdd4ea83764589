"""api/routes layer of gpufleet (see DESIGN.md)."""
