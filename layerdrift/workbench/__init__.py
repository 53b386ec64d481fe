"""Config, variant loading, the run store, the pipeline and the CLI: the only layer that knows files."""
