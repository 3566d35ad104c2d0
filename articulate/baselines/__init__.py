"""Reference predictors with no learned network (floors for the tables), one module per direction."""
