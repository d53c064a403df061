"""Publishing: one variant to one account, and the ledger-driven delivery around it."""
