"""Pure wire formats: bytes in, objects out, no I/O."""
