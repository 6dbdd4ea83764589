"""Stand-ins for hardware libraries, so collectors are tested without the hardware."""
