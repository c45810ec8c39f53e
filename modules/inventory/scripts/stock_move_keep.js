// Stock moves are the ledger behind stock levels: they are never deleted.
error("/status", "stock moves are kept; post a correcting move instead");
