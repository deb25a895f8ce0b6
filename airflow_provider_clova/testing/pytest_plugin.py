"""pytest fixtures for testing DAGs against the bundled CLOVA Studio emulator (placeholder)."""
