"""LightningCLI for every LightningModule/DataModule of the project, configured by YAML ``class_path``."""

from __future__ import annotations

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI


class ArticulateCLI(LightningCLI):
    """Any LightningModule and DataModule chosen by ``class_path`` in the config.

    Modules build their own optimizers from ``OptimizerCallable`` arguments (mri2audio has three),
    so LightningCLI's automatic ``--optimizer`` wiring is off.
    """

    def __init__(self, args=None, run: bool = True):
        super().__init__(
            model_class=LightningModule,
            datamodule_class=LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
        )


def run_lightning_cli(argv: list[str]) -> int:
    from articulate.errors import ArticulateError

    try:
        ArticulateCLI(args=argv)
    except ArticulateError as err:
        import sys

        print(f"articulate {argv[0]}: error: {err}", file=sys.stderr)
        return 1
    return 0
