"""``articulate fit|validate|test|predict``: LightningCLI for every direction, with the framework's guarantees.

On top of LightningCLI (any LightningModule/DataModule by ``class_path``):

* **one source per value**: the registered directions' ``link_arguments`` (data geometry -> model,
  shared noise range and feature widths between components);
* **safe checkpoints**: ``--ckpt_path`` is read with ``weights_only=True`` and checked before anything
  is built (readable, Lightning, finite weights, the same direction and model class as the config);
  the trainer restores it with ``weights_only=True`` too;
* **exact resume**: ``callbacks.resume.ResumeState`` (each batch's random numbers keyed to the seed, epoch
  and batch) joins every run; the train loaders start at the trainer's position (``datamodules.sampling``);
* **host memory**: a config's top-level ``cpu_allocator`` (``reuse`` | ``compact`` | ``default``) sets the
  CPU allocator mode before the model and the data are built (:mod:`articulate.training.runtime`: ``reuse``
  is fast, ``compact`` keeps the RSS at the live tensors for the paper-size configs);
* **files in one place**: everything a fit writes lives under ``--trainer.default_root_dir``; a W&B
  logger without an explicit ``save_dir`` writes there, ``WANDB_MODE=disabled`` turns W&B off (a CSV
  logger under the same folder keeps the metrics);
* **no selection on test data**: without validation subjects a ModelCheckpoint that monitors ``val/*``
  monitors the training loss instead (said in one line);
* **errors as one line**: an error raised while the config is instantiated (missing pretrained
  weights, a bad value) is reported as itself, not inside the parser's dump of every Union subtype.

``--test_after_fit true`` (the ``make train-*`` targets set it) ends ``fit`` with ``test`` on the
held-out split, from the best checkpoint when a ModelCheckpoint kept one (else the final weights).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from articulate.errors import ArticulateError, InputError
from lightning_modules.base import ArticulateModule

WANDB_LOGGER = "articulate.loggers.ArticulateWandbLogger"
SPECIAL_CKPT = ("last", "best", "hpc", "registry")


SUBCOMMANDS = ("fit", "validate", "test", "predict")
# Lines of jsonargparse's error dump that say how it searched, not what is wrong.
_DUMP_NOISE = ("Does not validate", "Subtypes:", "Errors:", "Given value type:", "Given value: NestedArg",
               "Expected a <class 'NoneType'>")


@runtime_checkable
class HeldOutData(Protocol):
    """What the CLI asks a DataModule (every direction's has it): whether its split has validation data."""

    @property
    def has_validation(self) -> bool: ...


class ConfigError(ArticulateError):
    """The config could not be turned into objects; the message is the innermost error's."""


def parse_error_line(message: str) -> str:
    """jsonargparse's parse error (a dump of every Union subtype it tried) as one line: the keys that lead to
    the problem, then the problem (``model / lambdas: Expected a <class 'float'>. Got value: abc``)."""
    keys: list[str] = []
    details: list[str] = []
    for raw in str(message).splitlines():
        line = raw.strip().lstrip("-").strip()
        if not line or line.startswith(_DUMP_NOISE):
            continue
        key = re.match(r'Parser key "([^"]+)":\s*(.*)$', line)
        if key:
            keys.append(key.group(1))
            line = key.group(2)
        if line:
            details.append(line.rstrip(":"))
    where = " / ".join(dict.fromkeys(keys))
    text = "; ".join(details) or str(message).strip()
    return f"{where}: {text}" if where else text


def resolve_config_args(args: list[str]) -> list[str]:
    """``args`` with every ``--config configs/...`` that does not exist here pointed at the project's
    packaged config of that name (:func:`articulate.paths.resolve_config`), so a command run from any
    folder finds ``configs/wav2uti.yaml``."""
    from articulate.paths import resolve_config

    out = list(args)
    for i, arg in enumerate(out):
        if arg in ("--config", "-c") and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
        elif arg.startswith("--config="):
            out[i] = "--config=" + resolve_config(arg.split("=", 1)[1])
    return out


def check_config_files(args: list[str]) -> None:
    """Refuse a ``--config`` file that is missing, not YAML, too large or an alias bomb with one line naming
    it (jsonargparse's own message does not say which of several files failed)."""
    import yaml

    from articulate.utils.safe_yaml import MAX_BYTES, load_yaml

    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        else:
            continue
        path = Path(value)
        if not path.is_file():
            if path.is_dir():
                raise InputError(path, "is a folder, not a config file")
            if path.suffix.lower() in (".yaml", ".yml", ".json"):
                raise InputError(path, "config file not found")
            continue  # an inline YAML string: jsonargparse judges it
        if path.stat().st_size > MAX_BYTES:
            raise InputError(path, f"config file of {path.stat().st_size:,} bytes is too large (at most {MAX_BYTES:,})")
        try:
            data = load_yaml(path.read_text(encoding="utf-8"), path)
        except UnicodeDecodeError:
            raise InputError(path, "not a text file (a config is YAML)") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            raise InputError(path, f"not valid YAML ({where}{getattr(err, 'problem', None) or err})") from None
        if data is not None and not isinstance(data, dict):
            raise InputError(path, f"a config holds sections (trainer:, model:, data: ...), this file a {type(data).__name__}")


def _leaves(value: Any, key: str):
    """``(key, value)`` of every number inside a parsed config value (nested dicts, lists, namespaces)."""
    if hasattr(value, "items") and not isinstance(value, (str, bytes)):
        items = value.items(branches=False) if hasattr(value, "clone") else value.items()
        for k, v in items:
            yield from _leaves(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{key}[{i}]")
    elif isinstance(value, float):
        yield key, value


def check_config_numbers(section: Any) -> None:
    """Refuse a NaN or infinite number anywhere in a parsed config (YAML ``.nan``/``.inf`` or ``--x nan``),
    naming its key; ranges are the components' own checks."""
    from articulate import validate

    for key, value in _leaves(section, ""):
        validate.number(value, f"--{key}")


def check_accelerator(section: Any) -> None:
    """A CUDA accelerator on a machine without one: one line saying what to use instead."""
    trainer = section.get("trainer") if hasattr(section, "get") else None
    accelerator = str(_get(trainer, "accelerator", "auto") or "auto").lower() if trainer is not None else "auto"
    if accelerator in ("gpu", "cuda"):
        from articulate import validate

        validate.device("cuda", "--trainer.accelerator")


def innermost(err: BaseException) -> BaseException:
    """The error at the bottom of a chain of wrapped errors (jsonargparse wraps constructor errors)."""
    seen = set()
    found: BaseException = err
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ArticulateError):
            return err
        found = err
        err = err.__cause__ or err.__context__
    return found


def _get(ns: Namespace, key: str, default: Any = None) -> Any:
    """A (dotted) key of a parsed config, ``default`` when absent or null."""
    value = ns.get(key, default)
    return default if value is None else value


def _model_options(args: list[str]) -> list[str]:
    """The model's init_args keys given on a command line (``--model.init_args.sampler.init_args.num_steps 8``
    -> ``sampler.init_args.num_steps``)."""
    out = []
    for a in args:
        if a.startswith("--model.init_args."):
            out.append(a[len("--model.init_args."):].split("=", 1)[0])
    return out


class ArticulateCLI(LightningCLI):
    """Any LightningModule and DataModule chosen by ``class_path`` in the config (see the module docstring).

    Modules build their own optimizers from ``OptimizerCallable`` arguments (mri2audio has three),
    so LightningCLI's automatic ``--optimizer`` wiring is off.
    """

    def __init__(self, args=None, run: bool = True):
        from callbacks.progress import ProgressLines
        from callbacks.resume import ResumeState

        _bound_yaml_aliases()
        self._fit_started: float | None = None
        self._link_targets: list[str] = []  # the registry's link targets (add_arguments_to_parser)
        # Parse errors are raised (not printed with the whole usage) and reported as one line.
        parser_kwargs = {"exit_on_error": False, **{sub: {"exit_on_error": False} for sub in SUBCOMMANDS}}
        try:
            super().__init__(
                model_class=LightningModule,
                datamodule_class=LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                auto_configure_optimizers=False,
                save_config_kwargs={"overwrite": True},
                # always added: exact resume, and progress lines when stderr is not a terminal
                trainer_defaults={"callbacks": [ResumeState(), ProgressLines()]},
                parser_kwargs=parser_kwargs,
                args=args,
                run=run,
            )
        except argparse.ArgumentError as err:
            given = args if isinstance(args, (list, tuple)) else sys.argv[1:]
            sub = next((str(a) for a in given if str(a) in SUBCOMMANDS), "fit")
            raise ConfigError(f"{parse_error_line(str(err))} (options: `articulate {sub} --help`)") from None

    # -- parser ---------------------------------------------------------------------------
    def add_arguments_to_parser(self, parser) -> None:
        from articulate.directions import directions

        # Every subcommand accepts it, so a saved fit config.yaml also loads into `articulate test`.
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="after fit, run test on the held-out split (best checkpoint if any)")
        parser.add_argument("--cpu_allocator", type=Literal["reuse", "compact", "default"] | None, default=None,
                            help="host memory allocator mode (articulate/training/runtime.py): reuse (fast, the default), "
                                 "compact (RSS follows the live tensors; paper-size configs), default (glibc's own)")
        targets: dict[str, str] = {}
        for direction in directions():
            for link in direction.links:
                if link.target in targets:
                    if targets[link.target] != str(link.source):
                        raise ValueError(f"two directions link {link.target} from different sources")
                    continue
                targets[link.target] = str(link.source)
                parser.link_arguments(link.source, link.target, compute_fn=link.compute)
        self._link_targets = list(targets)

    def _dump_config(self) -> None:
        """The config LightningCLI saves as the model's hyperparameters, with the linked values.

        jsonargparse's dump leaves out link targets nested inside a component's init_args (the U-Net's
        resolution, the loss's sigma_data...), although the parsed namespace holds them; without them a
        checkpoint's hyperparameters would rebuild a network of another shape. They are written back here.
        """
        if hasattr(self, "config_dump"):
            return
        super()._dump_config()
        section = self._section()
        for target in self._link_targets:
            try:
                value = section[target]
            except (KeyError, TypeError, AttributeError):
                continue  # a link whose target the chosen classes lack
            node, parts = self.config_dump, target.split(".")
            for part in parts[:-1]:
                if isinstance(node, dict) and part == "init_args" and "class_path" in node:
                    node.setdefault("init_args", {})  # a component given by class_path alone
                if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                    node = None
                    break
                node = node[part]
            if node is not None:
                if is_dataclass(value):
                    value = asdict(value)
                node[parts[-1]] = value.as_dict() if isinstance(value, Namespace) else value

    def parse_arguments(self, parser, args) -> None:
        if args is None or isinstance(args, (list, tuple)):
            args = resolve_config_args([str(a) for a in (sys.argv[1:] if args is None else args)])
            check_config_files(args)
        self._given = list(args) if isinstance(args, (list, tuple)) else []
        super().parse_arguments(parser, args)
        section = self._section()
        check_config_numbers(section)
        check_accelerator(section)
        self._check_ckpt_path()
        from articulate.paths import cache_dir

        cache_dir()  # an unusable ARTICULATE_CACHE is refused before the trainer makes its log folder

    def _section(self) -> Any:
        sub = self.config.get("subcommand")
        return self.config[sub] if sub else self.config

    def _parse_ckpt_path(self) -> None:
        """LightningCLI's (a checkpoint's hyperparameters update the config, except the model options the command line
        gives), with the hyperparameters first brought to this version: options removed at the value under which they did nothing are dropped (one warning line);
        a removed option at another value, or any option the model class no longer takes, refuses the checkpoint
        with one line (its networks still load for inference: ``articulate.inference``)."""
        sub = self.config.get("subcommand")
        ckpt = self.config[sub].get("ckpt_path") if sub else None
        if not ckpt or str(ckpt) in SPECIAL_CKPT or not Path(ckpt).is_file():
            return
        import inspect

        from articulate.checkpoints import Checkpoint
        from articulate.components import drop_removed_in, import_class, warn_dropped

        hparams = {k: v for k, v in Checkpoint.read(ckpt, check_weights=False).hparams.items() if k != "_instantiator"}
        class_path = hparams.pop("_class_path", None)
        if not hparams:
            return
        dropped: list[str] = []
        hparams = drop_removed_in({"class_path": class_path, "init_args": hparams} if class_path else hparams, ckpt, dropped)
        if class_path:
            cls = import_class(str(class_path), ckpt, prefixes=("",))  # the config's own class (_check_ckpt_path)
            takes = set(inspect.signature(cls.__init__).parameters) - {"self"}
            unknown = [k for k in hparams["init_args"] if k not in takes]
            if unknown:
                raise InputError(ckpt, f"saved by an older version: {cls.__name__} no longer takes {', '.join(unknown)}; "
                                       "resume or test it with the release that trained it (its networks still load "
                                       "for inference)")
            hparams = {"class_path": class_path, "dict_kwargs": hparams["init_args"]}
        warn_dropped(ckpt, dropped)
        # The model options given on the command line win over the saved ones (else ``articulate test --ckpt_path X
        # --model.init_args.guidance.scale 3`` would silently sample at the trained scale).
        saved = hparams["dict_kwargs"] if class_path else hparams
        for key in _model_options(getattr(self, "_given", [])):
            node, parts = saved, key.split(".")
            for part in parts[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(parts[-1], None)
        self.config = self.parser.parse_object({sub: {"model": hparams}}, self.config)

    # -- checks before anything is built --------------------------------------------------
    def _check_ckpt_path(self) -> None:
        """Refuse an unusable ``--ckpt_path`` with one line before LightningCLI reads its hyperparameters."""
        section = self._section()
        ckpt = _get(section, "ckpt_path")
        if not ckpt or str(ckpt) in SPECIAL_CKPT:
            return
        from articulate.checkpoints import Checkpoint
        from articulate.components import import_class
        from articulate.directions import direction_of_module

        path = Path(ckpt)
        model_class = str(_get(section, "model.class_path", ""))
        want = direction_of_module(model_class)
        if want is None and model_class:
            cls = import_class(model_class, None, prefixes=("",))
            want = (cls.direction or None) if isinstance(cls, type) and issubclass(cls, ArticulateModule) else None
        ck = Checkpoint.read(path, check_weights=False)
        if want is not None and ck.direction != want:
            from articulate.checkpoints import registered_direction

            record = registered_direction(ck.direction)
            hint = f"; give the config it was trained with (e.g. {record.config})" if record is not None else ""
            raise InputError(path, f"{ck.describe_direction()}, but the config builds a {want} model "
                                   f"({model_class.rsplit('.', 1)[-1]}){hint}")
        ck.check_finite()
        theirs = ck.module_class
        if theirs and model_class and theirs != model_class:
            raise InputError(path, f"a {theirs.rsplit('.', 1)[-1]} checkpoint, but the config builds "
                                   f"{model_class.rsplit('.', 1)[-1]} (give the config it was trained with)")

    def before_instantiate_classes(self) -> None:
        section = self._section()
        mode = _get(section, "cpu_allocator")
        if mode:  # before the model and the data take their memory
            from articulate.training.runtime import set_allocator

            set_allocator(str(mode))
        trainer = section.get("trainer")
        if trainer is None:
            return
        root = Path(_get(trainer, "default_root_dir", os.getcwd()))
        from articulate.utils.atomic import ensure_dir

        if self.config.get("subcommand") in ("fit", None):
            ensure_dir(root)
        self._configure_logger(trainer, root)

    def _configure_logger(self, trainer: Any, root: Path) -> None:
        logger = trainer.get("logger")
        if not (isinstance(logger, Namespace) and logger.get("class_path") == WANDB_LOGGER):
            return
        if logger.get("init_args") is None:
            logger["init_args"] = Namespace()
        init = logger["init_args"]
        if os.environ.get("WANDB_MODE", "").lower() == "disabled":
            # W&B off: keep the metrics in a CSV log in the same folder.
            logger["class_path"] = "lightning.pytorch.loggers.CSVLogger"
            project = _get(init, "project", "articulate")
            save_dir = _get(init, "save_dir", str(root))
            logger["init_args"] = Namespace(save_dir=save_dir, name=project)
        elif _get(init, "save_dir") is None:
            init["save_dir"] = str(root)

    def after_instantiate_classes(self) -> None:
        self._monitor_without_validation()

    def _monitor_without_validation(self) -> None:
        """No selection on held-out data: when the DataModule has no validation data (its ``has_validation``), a
        ModelCheckpoint that monitors ``val/*`` monitors the training loss instead, said in one line."""
        dm = self.datamodule
        if not isinstance(dm, HeldOutData) or dm.has_validation or self.trainer is None:
            return
        for cb in self.trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.monitor and str(cb.monitor).startswith("val/"):
                print(f"articulate: no validation data: the checkpoint monitors train/loss instead of {cb.monitor} "
                      "(never the test split)", file=sys.stderr)
                # what ModelCheckpoint(monitor="train/loss", mode="min") sets; nothing has been saved yet
                cb.monitor, cb.mode, cb.kth_value = "train/loss", "min", torch.tensor(torch.inf)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ArticulateError:
            raise
        except Exception as err:  # noqa: BLE001 - reported as one line below
            root = innermost(err)
            if isinstance(root, ArticulateError):
                raise root from None
            message = str(root).strip().splitlines()[0] if str(root).strip() else ""
            raise ConfigError(f"the configuration could not be built: {type(root).__name__}: {message}") from None

    # -- subcommands ------------------------------------------------------------------------
    def fit(self, model, datamodule=None, ckpt_path=None, weights_only=None, **kwargs) -> None:
        self._fit_started = time.perf_counter()
        self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, **kwargs)

    def validate(self, model, datamodule=None, ckpt_path=None, weights_only=None, **kwargs):
        return self.trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, **kwargs)

    def test(self, model, datamodule=None, ckpt_path=None, weights_only=None, **kwargs):
        return self.trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, **kwargs)

    def predict(self, model, datamodule=None, ckpt_path=None, weights_only=None, **kwargs):
        return self.trainer.predict(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True, **kwargs)

    def after_fit(self) -> None:
        if self._fit_started is not None and self.trainer.is_global_zero:
            minutes = (time.perf_counter() - self._fit_started) / 60
            print(f"articulate fit: {self.trainer.global_step} optimizer steps, {self.trainer.current_epoch} epochs "
                  f"in {minutes:.1f} min (wall)", file=sys.stderr)
        if not self.config.get(self.subcommand, {}).get("test_after_fit", False):
            return
        if not self.trainer.interrupted:
            test_best(self.trainer, self.model, self.datamodule)


def _bound_yaml_aliases() -> None:
    """Every YAML jsonargparse loads (config files, inline values) goes through the alias-expansion bound."""
    import yaml
    from jsonargparse import get_loader, set_loader

    from articulate.utils.safe_yaml import bounded

    current = get_loader("yaml")
    if not hasattr(current, "__wrapped__"):
        set_loader("yaml", bounded(current), (yaml.YAMLError,))


def test_best(trainer: Trainer, model: LightningModule, datamodule: LightningDataModule, **kwargs) -> tuple[list, str | None]:
    """Test after fit from the best checkpoint a ModelCheckpoint kept (else the current weights):
    ``(results, checkpoint path or None)``."""
    callback = trainer.checkpoint_callback
    ckpt = (callback.best_model_path if callback is not None else "") or None
    return trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=True, **kwargs), ckpt


def run_lightning_cli(argv: list[str]) -> int:
    from articulate.utils.atomic import disk_error_line

    try:
        ArticulateCLI(args=argv)
    except ArticulateError as err:
        print(f"articulate {argv[0]}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        line = disk_error_line(err)  # a checkpoint or a log on a full disk (Lightning writes through a temporary)
        if line is None:
            raise
        print(f"articulate {argv[0]}: error: {line}", file=sys.stderr)
        return 1
    return 0
