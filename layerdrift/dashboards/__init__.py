"""Panel dashboards that read a run store (never a model)."""
