"""The direction registry: every record is consistent with the code and configs, overlays say what they
extend, and a new direction is a plugin (a toy one is added from this test without touching a project file)."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import ROOT, stack

from articulate.directions import Direction, Link, directions, get_direction, register, unregister


@pytest.mark.parametrize("d", directions(), ids=lambda d: d.name)
def test_every_record_points_at_real_code_and_configs(d):
    from articulate.components import import_class
    from articulate.inference import Predictor

    assert (ROOT / d.config).is_file()
    named = d.overlays()  # presets, variants and a variant's overlays under a preset: the record names every file
    assert all((ROOT / d.overlay(name)).is_file() for name in named)
    folder = ROOT / "configs" / d.name
    assert {p.stem for p in folder.glob("*.yaml")} == named
    for module_path, inference_path in d.inference.items():
        module_cls = import_class(module_path, prefixes=("",))
        assert module_cls.direction == d.name and module_cls.inference_class == inference_path
        assert issubclass(import_class(inference_path), Predictor)
    for tool, (module, _) in d.tools.items():
        assert callable(importlib.import_module(module).main), tool


def _extends(path: Path) -> list[str]:
    first = path.read_text().splitlines()[0]
    m = re.match(r"# extends: (.*)", first)
    assert m, f"{path.relative_to(ROOT)}: the first line must say what it extends ('# extends: ...')"
    return [p.strip() for p in m.group(1).split("+")]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_overlays_say_what_they_extend_and_the_registry_agrees(path):
    """The header of every overlay is the stack the registry builds for it (one order, written down twice:
    once for readers, checked here)."""
    files = [str(p.relative_to(ROOT)) for p in stack(path.parent.name, path.name)]
    assert files[-1] == str(path.relative_to(ROOT))
    assert _extends(path) == files[:-1]


# ---------------------------------------------------------------------------------------------
# A toy direction, registered from the test: the files a new direction creates, and nothing else.

TOY_FILES = {
    "toydir/__init__.py": "",
    "toydir/net.py": """
        import torch
        from torch import nn

        class Scale(nn.Module):
            def __init__(self, size: int = 3):
                super().__init__()
                self.size = size
                self.w = nn.Parameter(torch.ones(size))

            def forward(self, x):
                return x * self.w
    """,
    "toydir/inference.py": """
        from articulate.inference import Predictor

        class ToyPredictor(Predictor):
            direction = "toy"

            def __init__(self, net, offset: float = 0.0):
                super().__init__()
                self.net, self.offset = net, float(offset)

            def forward(self, x):
                return self.net(x) + self.offset
    """,
    "toydir/module.py": """
        import torch
        from lightning_modules.base import ArticulateModule

        class ToyModule(ArticulateModule):
            direction = "toy"
            inference_class = "toydir.inference.ToyPredictor"

            def __init__(self, net: torch.nn.Module, size: int = 3, offset: float = 0.5):
                super().__init__()
                self.save_config()
                self.net, self.offset = net, offset

            def inference_init(self):
                return {"net": self.net, "offset": self.offset}

            def training_step(self, batch, batch_idx):
                (x,) = batch
                loss = (self.net(x) - 2 * x).pow(2).mean()
                self.check_finite(loss=loss)
                self.log("train/loss", loss)
                return loss

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)
    """,
    "toydir/data.py": """
        import torch
        from lightning.pytorch import LightningDataModule
        from torch.utils.data import DataLoader, TensorDataset

        class ToyData(LightningDataModule):
            def __init__(self, size: int = 3, n: int = 8):
                super().__init__()
                self.size, self.n = size, n

            def train_dataloader(self):
                return DataLoader(TensorDataset(torch.randn(self.n, self.size)), batch_size=4)
    """,
    "toydir/tool.py": """
        def main(argv):
            print("toy tool", *argv)
            return 0
    """,
    "toydir/repro.py": """
        from articulate.experiments.reproduce import Plan, Reproduction

        def add_arguments(parser):
            parser.add_argument("--flavour", default="plain")

        def plan(args, extra):
            return Plan("toy", None, [], [], [0], list(range(args.seeds)), extra, f"toy table, {args.flavour}")

        REPRODUCTION = Reproduction(add_arguments, plan)
    """,
    "configs/toy.yaml": """
        trainer: {max_steps: 2, accelerator: cpu, logger: false, enable_progress_bar: false, enable_model_summary: false}
        model:
          class_path: toydir.module.ToyModule
          init_args:
            net: {class_path: toydir.net.Scale}
        data:
          class_path: toydir.data.ToyData
          init_args: {size: 5}
    """,
}

TOY = Direction(
    name="toy", summary="a toy direction", modalities=(), phantom=None, config="configs/toy.yaml",
    inference={"toydir.module.ToyModule": "toydir.inference.ToyPredictor"},
    tools={"toy-tool": ("toydir.tool", "a toy tool")},
    links=(Link("data.init_args.size", "model.init_args.size"), Link("data.init_args.size", "model.init_args.net.init_args.size")),
    presets={}, packages=("toydir.",), reproduce="toydir.repro:REPRODUCTION",
)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    for rel, text in TOY_FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(tmp_path))
    register(TOY)  # the one line a direction adds
    yield tmp_path
    unregister("toy")
    for name in [m for m in sys.modules if m == "toydir" or m.startswith("toydir.")]:
        del sys.modules[name]


def test_a_toy_direction_is_a_plugin(toy, capsys):
    from helpers import fit_in_process

    from articulate.checkpoints import Checkpoint
    from articulate.cli.main import main
    from articulate.inference import load_predictor

    before = {p: p.stat().st_mtime for p in ROOT.rglob("*.py") if ".venv" not in p.parts}
    assert main(["--help"]) == 0 and "toy-tool" in capsys.readouterr().out
    assert main(["toy-tool", "x"]) == 0 and "toy tool x" in capsys.readouterr().out
    assert main(["directions", "--names"]) == 0 and "toy" in capsys.readouterr().out.split()

    cli = fit_in_process([toy / "configs/toy.yaml"], [f"--trainer.default_root_dir={toy / 'run'}"])
    assert cli.model.net.size == 5  # linked from the data section
    ckpt = toy / "toy.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    assert Checkpoint.read(ckpt).direction == "toy"
    pred = load_predictor(ckpt, direction="toy")
    x = torch.randn(2, 5)
    torch.testing.assert_close(pred(x), cli.model.to_inference()(x))
    assert pred.offset == 0.5
    # the other directions' tools refuse it by its direction, before building anything
    import numpy as np

    np.save(toy / "seq.npy", np.random.default_rng(0).random((6, 32, 32)).astype(np.float32))
    assert main(["synthesize-audio", "--ckpt", str(ckpt), "--mri", str(toy / "seq.npy"), "--out", str(toy / "o.wav")]) == 1
    assert "a toy checkpoint" in capsys.readouterr().err
    # and nothing of the project was written
    assert {p: p.stat().st_mtime for p in ROOT.rglob("*.py") if ".venv" not in p.parts} == before


def test_the_reproduction_is_the_records_own(toy, monkeypatch, tmp_path, capsys):
    """`articulate reproduce <direction>` takes the direction's options and plan from its record, nothing else."""
    from articulate.cli.main import main
    from articulate.experiments import reproduce as rp

    seen = {}

    def fake_reproduce(plan, out, extra_args=None, logger="csv"):
        seen.update(plan=plan, extra=extra_args)
        out.mkdir(parents=True)
        (out / "table.md").write_text(plan.header)
        return {"seconds": 0}

    monkeypatch.setattr(rp, "reproduce", fake_reproduce)
    assert main(["reproduce", "toy", "--flavour", "sweet", "--seeds", "2", "--out", str(tmp_path / "r"),
                 "--trainer.max_steps=1"]) == 0
    assert seen["plan"].header == "toy table, sweet" and seen["plan"].seeds == [0, 1]
    assert seen["extra"] == ["--trainer.max_steps=1"] and "toy table, sweet" in capsys.readouterr().out


def test_checkpoint_classes_outside_registered_packages_are_refused(toy):
    """A checkpoint may only name classes of the core or of a registered direction's packages."""
    from articulate.components import instantiate
    from articulate.errors import InputError

    assert instantiate({"class_path": "toydir.net.Scale", "init_args": {"size": 2}}).size == 2
    with pytest.raises(InputError, match="refusing class 'os.system'"):
        instantiate({"class_path": "os.system", "init_args": {"command": "echo no"}})
    unregister("toy")
    with pytest.raises(InputError, match="refusing class"):
        instantiate({"class_path": "toydir.net.Scale"})
    register(TOY)


def test_unknown_direction_lists_the_known_ones():
    with pytest.raises(KeyError, match="mri2audio"):
        get_direction("nope")


def test_a_real_data_preset_takes_the_data_folder_from_the_command_line(capsys):
    """No folder of recordings is written in a config: the preset says what the command line must give."""
    from articulate.cli.main import main

    assert main(["train", "wav2uti", "--preset", "realdata_quick"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "realdata_quick preset needs --data.init_args.data_dir" in err[0]
    preset = get_direction("wav2uti").presets["realdata_quick"]
    assert preset.missing(["--data.data_dir=/data/videos"]) == preset.missing(["--data.init_args.data_dir", "/d"]) == []
    assert "data_dir" not in (ROOT / "configs/wav2uti/realdata_quick.yaml").read_text().split("data:")[1]


def test_a_preset_trains_its_default_variants_unless_one_is_named(monkeypatch, capsys):
    """wav2uti's QUICK preset trains the speech-prior diffusion; naming any variant (``paper`` among them) replaces
    it, and the stack ``articulate train`` hands to the fit says which configs it layered."""
    from articulate.cli import train

    d = get_direction("wav2uti")
    assert d.train_variants([], "quick") == ["speech_prior"]
    assert d.train_variants(["paper"], "quick") == ["paper"] and d.train_variants(["dnn"], "quick") == ["dnn"]
    assert d.train_variants([], None) == [] and d.train_variants([], "realdata_quick") == ["speech_prior"]
    assert d.config_stack(d.train_variants([], "realdata_quick"), "realdata_quick")[-1] == "configs/wav2uti/speech_prior.yaml"
    got = []
    monkeypatch.setattr("articulate.training.lightning_cli.run_lightning_cli", lambda argv: got.append(argv) or 0)
    assert train.main(["wav2uti", "--quick", "--no-test"]) == 0
    configs = [a for a in got[0] if a.endswith(".yaml")]
    assert [Path(c).name for c in configs] == ["wav2uti.yaml", "quick.yaml", "speech_prior.yaml",
                                                "speech_prior_quick.yaml"]
    assert "trains --variant speech_prior" in capsys.readouterr().err  # stdout is --print_config's
    assert train.main(["wav2uti", "--quick", "--no-test", "--variant", "paper"]) == 0
    assert [Path(a).name for a in got[1] if a.endswith(".yaml")] == ["wav2uti.yaml", "quick.yaml", "paper.yaml"]


def test_stacks_name_only_what_the_record_names():
    d = get_direction("mri2audio")
    assert d.config_stack(["lip2audspec"], "quick") == ["configs/mri2audio.yaml", "configs/mri2audio/quick.yaml",
                                                        "configs/mri2audio/lip2audspec.yaml",
                                                        "configs/mri2audio/lip2audspec_quick.yaml"]
    assert d.config_stack(["no_gan"], "quick")[-1] == "configs/mri2audio/no_gan.yaml"  # no companion named: none
    with pytest.raises(KeyError, match="no variant 'lip2audspec_quick'"):
        d.config_stack(["lip2audspec_quick"])
