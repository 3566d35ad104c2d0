"""The cached phantom contour tracker of wav2uti's test passes (articulate.experiments.trackers) and the hook
that gives it to ``articulate train wav2uti`` on the phantom."""

from __future__ import annotations

import torch

from articulate.experiments import trackers
from articulate.experiments.runner import RunSpec


def _spec(tmp_path, steps=5):
    (tmp_path / "a.yaml").write_text("model: {}\n")
    return RunSpec("uti2contour", "Contour tracker (test)", ["a.yaml"], [f"--trainer.max_steps={steps}"], fold=None)


def test_trained_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTICULATE_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_run_one(spec, out_dir, logger="csv"):
        calls.append(spec)
        path = out_dir / "run.ckpt"
        torch.save({"state_dict": {"w": torch.ones(2)}, "optimizer_states": [{"big": torch.zeros(10)}],
                    "articulate": {"direction": "uti2contour"}}, path)
        return {"checkpoint": str(path)}

    monkeypatch.setattr(trackers, "run_one", fake_run_one)
    first = trackers.cached_tracker(_spec(tmp_path), tmp_path, quiet=True)
    again = trackers.cached_tracker(_spec(tmp_path), tmp_path, quiet=True)
    assert first == again and len(calls) == 1
    ck = torch.load(first, weights_only=True)
    assert "optimizer_states" not in ck and torch.equal(ck["state_dict"]["w"], torch.ones(2))
    # another step count or another config content: another tracker
    other = trackers.cached_tracker(_spec(tmp_path, steps=6), tmp_path, quiet=True)
    assert other != first and len(calls) == 2
    spec = _spec(tmp_path)
    (tmp_path / "a.yaml").write_text("model: {init_args: {}}\n")
    assert trackers.tracker_key(spec, tmp_path) != first.stem.rsplit("-", 1)[1]
    assert not list((tmp_path / "cache" / "trackers").glob(".tracker-*"))  # no scratch left behind


def test_train_adds_the_tracker_on_the_phantom_only(monkeypatch):
    from articulate.experiments import wav2uti_plan

    monkeypatch.setattr(trackers, "cached_tracker", lambda spec, root: f"/cache/{spec.model}.ckpt")
    got = wav2uti_plan.train_prepare("quick", [], [])
    assert got == ["--model.init_args.evaluation.contour_ckpt=/cache/Contour tracker (phantom, 64 px).ckpt"]
    assert wav2uti_plan.train_prepare("quick", [], ["--model.init_args.evaluation.contour_ckpt=/mine.ckpt"]) == []
    assert wav2uti_plan.train_prepare("quick", [], ["--data.init_args.data_dir=/data"]) == []
    assert wav2uti_plan.train_prepare("realdata_quick", [], []) == []  # real recordings: no true surface
