"""Jobs: durable, asynchronous generation runs (see DESIGN.md, "Jobs")."""
