"""The state: one database (SQLite today), its tables and migrations, and the only SQL."""
