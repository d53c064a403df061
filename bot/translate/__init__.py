"""Machine translation: backends behind one protocol, entity protection, and a cache."""
