"""First-party cluster node types and link types (placeholder)."""
