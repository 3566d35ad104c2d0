"""Running a fit: LightningCLI with the framework's guarantees (:mod:`.lightning_cli`) and the process settings
applied before torch is imported (:mod:`.runtime`). Above the framework layers, below ``articulate.cli`` (the
commands) and ``articulate.experiments`` (the reproduction and the bench), which both use it."""
