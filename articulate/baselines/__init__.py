"""Reference predictors with no learned network (floors and probes for the tables), one module per direction."""
