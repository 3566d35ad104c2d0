"""LightningCLI for every LightningModule/DataModule of the project, configured by YAML ``class_path``."""

from __future__ import annotations

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI


class ArticulateCLI(LightningCLI):
    """Any LightningModule and DataModule chosen by ``class_path`` in the config.

    Modules build their own optimizers from ``OptimizerCallable`` arguments (mri2audio has three),
    so LightningCLI's automatic ``--optimizer`` wiring is off.

    ``--test_after_fit true`` (the ``make train-*`` targets set it) ends ``fit`` with ``test`` on the
    held-out split, from the best checkpoint when a ModelCheckpoint kept one (else the final
    weights), so one command gives the held-out figures.
    """

    def add_arguments_to_parser(self, parser) -> None:
        # Every subcommand accepts it, so a saved fit config.yaml also loads into `articulate test`.
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="after fit, run test on the held-out split (best checkpoint if any)")

    def after_fit(self) -> None:
        if not self.config.get(self.subcommand, {}).get("test_after_fit", False):
            return
        if not self.trainer.interrupted:
            test_best(self.trainer, self.model, self.datamodule)

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


def test_best(trainer: Trainer, model: LightningModule, datamodule: LightningDataModule, **kwargs) -> tuple[list, str | None]:
    """Test after fit from the best checkpoint a ModelCheckpoint kept (else the current weights):
    ``(results, checkpoint path or None)``."""
    ckpt = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    return trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, **kwargs), ckpt


def run_lightning_cli(argv: list[str]) -> int:
    from articulate.errors import ArticulateError

    try:
        ArticulateCLI(args=argv)
    except ArticulateError as err:
        import sys

        print(f"articulate {argv[0]}: error: {err}", file=sys.stderr)
        return 1
    return 0
