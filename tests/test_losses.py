"""One way to add a loss term (articulate.losses): named terms, weights keyed by the logged name, every term
logged and summed in one place; a toy term added to the mri2audio translator through the config."""

from __future__ import annotations

import csv

import pytest
import torch
from helpers import config_args, mri_tiny_overlay, quiet_trainer, stack

from articulate.losses import LossTerms, check_lambdas, collect_terms, weighted_sum


class ToyTerm(LossTerms):
    """A toy term: the mean predicted mel (any differentiable function of the context would do)."""

    names = ("loss_toy",)

    def forward(self, context):
        return {"loss_toy": context["pred"].mean()}


def test_weighted_sum_is_the_sum_written_by_hand():
    terms = {"a": torch.tensor(0.3), "b": torch.tensor(2.0), "c": torch.tensor(5.0)}
    total = weighted_sum(terms, {"a": 1.0, "b": 0.5})  # c has no weight: logged, not optimised
    assert float(total) == pytest.approx(0.3 + 0.5 * 2.0)
    assert weighted_sum({"a": terms["a"]}, {"a": 1.0}) is terms["a"]  # weight 1 adds the term itself
    with pytest.raises(ValueError, match="no loss term has a weight"):
        weighted_sum(terms, {"d": 1.0})


def test_a_weight_for_no_term_and_a_term_given_twice_are_refused():
    assert check_lambdas({"loss_rec": 1, "loss_toy": 0.1}, ["loss_rec", "loss_toy"], "M") == {"loss_rec": 1.0,
                                                                                             "loss_toy": 0.1}
    with pytest.raises(ValueError, match="lambdas name loss_tyo, which no loss term carries"):
        check_lambdas({"loss_tyo": 0.1}, ["loss_rec", "loss_toy"], "M")
    terms = {"loss_toy": torch.tensor(1.0)}
    with pytest.raises(ValueError, match="another term has"):
        collect_terms([ToyTerm()], {"pred": torch.zeros(1)}, terms)


def test_the_translator_refuses_a_weight_for_a_term_it_cannot_carry():
    from test_mri2audio_training import tiny_networks

    from lightning_modules.mri2audio_translator import MRI2AudioTranslator

    with pytest.raises(ValueError, match="loss_toy"):
        MRI2AudioTranslator(*tiny_networks(), lambdas={"loss_rec": 1.0, "loss_toy": 0.1})
    model = MRI2AudioTranslator(*tiny_networks(), lambdas={"loss_rec": 1.0, "loss_toy": 0.1}, losses=[ToyTerm()])
    assert model.lambdas["loss_toy"] == 0.1


@pytest.mark.slow
def test_a_toy_loss_term_added_by_one_config_line_is_logged_and_summed(tmp_path):
    """The overlay's one line ``losses: [{class_path: test_losses.ToyTerm}]`` adds the term; its weight comes from
    the command line (``--model.init_args.lambdas.loss_toy``, merged into the config's lambdas); the logs hold
    ``train/loss_toy`` and ``train/loss`` = loss_rec + 0.5 loss_kl + 0.5 loss_adv + 0.1 loss_toy at every batch."""
    from articulate.training.lightning_cli import ArticulateCLI

    overlay = mri_tiny_overlay(tmp_path / "tiny.yaml", **quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=3,
                                                                       limit_val_batches=0, log_every_n_steps=1))
    toy = tmp_path / "toy.yaml"
    toy.write_text("model: {init_args: {losses: [{class_path: test_losses.ToyTerm}]}}\n")  # the one line
    torch.set_num_threads(1)
    ArticulateCLI(args=["fit", *config_args([*stack("mri2audio"), overlay, toy]), "--model.init_args.lambdas.loss_toy=0.1",
                        "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={tmp_path}"])
    (log,) = tmp_path.rglob("metrics.csv")
    rows = [r for r in csv.DictReader(log.open()) if r.get("train/loss_toy")]
    assert len(rows) >= 2  # a row per training batch
    for r in rows:
        parts = {k: float(r[f"train/{k}"]) for k in ("loss_rec", "loss_kl", "loss_adv", "loss_toy")}
        assert 0 < parts["loss_toy"] < 1  # a mean of sigmoid outputs
        want = parts["loss_rec"] + 0.5 * parts["loss_kl"] + 0.5 * parts["loss_adv"] + 0.1 * parts["loss_toy"]
        assert float(r["train/loss"]) == pytest.approx(want, rel=1e-5)


class DenoisedL1(LossTerms):
    """A toy wav2uti term (the diffusion model's context): L1 between the EDM's denoised clips and their targets."""

    names = ("loss_l1",)

    def forward(self, context):
        return {"loss_l1": (context["denoised"] - context["target"]).abs().mean()}


class PredL1(LossTerms):
    """The same for the DNN baseline (its context: ``pred``, ``target``, ``feats``, ``batch_size``)."""

    names = ("loss_l1",)

    def forward(self, context):
        assert context["feats"].shape[0] == context["pred"].shape[0] == context["batch_size"]
        return {"loss_l1": (context["pred"] - context["target"]).abs().mean()}


@pytest.mark.slow
@pytest.mark.parametrize("variant, term, own", [(None, "DenoisedL1", "loss_edm"), ("dnn.yaml", "PredL1", "loss_mse")],
                         ids=["diffusion", "dnn"])
def test_a_toy_loss_term_added_to_wav2uti_by_one_config_line_is_logged_and_summed(tmp_path, variant, term, own):
    """docs/ARCHITECTURE.md's worked example: one class, one overlay line; ``train/loss`` = own term + 0.1 loss_l1 at
    every batch, and the validation pass logs the same terms."""
    from helpers import make_cohort, wav2uti_tiny_override

    from articulate.training.lightning_cli import ArticulateCLI

    cohort = make_cohort(tmp_path / "cohort", speakers=3, utterances=2, seconds=0.5)
    tiny = wav2uti_tiny_override(cohort, variant, tmp_path)
    toy = tmp_path / "toy.yaml"
    toy.write_text(f"model: {{init_args: {{losses: [{{class_path: test_losses.{term}}}]}}}}\n")  # the one line
    torch.set_num_threads(1)
    ArticulateCLI(args=["fit", *config_args([*stack("wav2uti", variant), tiny, toy]), "--model.init_args.lambdas.loss_l1=0.1",
                        "--trainer.log_every_n_steps=1", "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
                        f"--trainer.logger.init_args.save_dir={tmp_path}"])
    (log,) = tmp_path.rglob("metrics.csv")
    table = list(csv.DictReader(log.open()))
    rows = [r for r in table if r.get("train/loss_l1")]
    assert len(rows) == 2  # a row per training batch
    for r in rows:
        parts = {k: float(r[f"train/{k}"]) for k in (own, "loss_l1")}
        assert parts["loss_l1"] > 0
        assert float(r["train/loss"]) == pytest.approx(parts[own] + 0.1 * parts["loss_l1"], rel=1e-5)
    (val,) = [r for r in table if r.get("val/loss")]
    assert float(val["val/loss"]) == pytest.approx(float(val[f"val/{own}"]) + 0.1 * float(val["val/loss_l1"]), rel=1e-5)
