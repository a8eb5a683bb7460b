"""Where a model comes from and what is read of it: sources, loading, token table, memory checks."""
