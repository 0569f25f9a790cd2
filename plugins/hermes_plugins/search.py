"""First-party ``vector_search`` stage (placeholder: filled in by the multi-stage work)."""
