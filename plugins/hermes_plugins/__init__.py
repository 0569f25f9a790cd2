"""First-party hermes plugins."""
