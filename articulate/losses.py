"""One way to add a loss term, the same in every direction (descript-audio-codec's ``lambdas``).

* A loss is a set of **named terms**. A LightningModule computes its own (its paper's losses, under the
  names it declares in ``builtin_terms``, e.g. mri2audio's ``loss_rec``, ``loss_kl``, ``loss_adv``) and
  adds those of the :class:`LossTerms` components listed in its ``losses`` argument.
* The **weights live in the config, keyed by the term's logged name**: ``lambdas: {loss_rec: 1.0,
  loss_kl: 0.5}``. The objective is the sum of ``lambda * term`` over the terms that have a weight, in the
  order the terms were produced (:func:`weighted_sum`); a term without a weight is logged, not optimised.
  A weight for a name no term can carry is refused when the config is read (:func:`check_lambdas`).
* **Every term is logged** (``<stage>/<name>``) with the sum (``<stage>/loss``), in one place
  (``lightning_modules.base.ArticulateModule.objective``).

Adding a term therefore takes one class and one YAML entry (docs/ARCHITECTURE.md, "Add a loss term")::

    class MelL1(LossTerms):
        names = ("loss_l1",)

        def forward(self, context):
            return {"loss_l1": (context["pred"] - context["target"]).abs().mean()}

    model:
      init_args:
        losses: [{class_path: my_package.MelL1}]      # logged as train/loss_l1 ...
        lambdas: {loss_rec: 1.0, ..., loss_l1: 0.1}    # ... and optimised with weight 0.1

``context`` is the mapping of named tensors the LightningModule hands its components; each module lists
its keys in its docstring (mri2audio: ``pred``, ``target``, ``mri``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["LossTerms", "check_lambdas", "weighted_sum", "collect_terms"]


class LossTerms(nn.Module):
    """A loss component: ``forward(context) -> {name: scalar tensor}`` with the names it declares in ``names``."""

    component = True
    names: ClassVar[tuple[str, ...]] = ()

    def forward(self, context: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def check_lambdas(lambdas: Mapping[str, float] | None, known: Iterable[str], owner: str) -> dict[str, float]:
    """The weights as floats; a ValueError naming the unknown keys when one names no term (a typo would
    otherwise leave a term out of the objective without a word)."""
    out = {str(k): float(v) for k, v in (lambdas or {}).items()}
    known = list(dict.fromkeys(known))
    unknown = [k for k in out if k not in known]
    if unknown:
        raise ValueError(f"{owner}: lambdas name {', '.join(unknown)}, which no loss term carries "
                         f"(terms: {', '.join(known) or 'none'}; a new term comes from a LossTerms component in `losses`)")
    return out


def collect_terms(components: Iterable[LossTerms], context: Mapping[str, Any], terms: dict[str, torch.Tensor]) -> None:
    """Add each component's terms to ``terms`` (in place); a name given twice is an error."""
    for component in components:
        for name, value in component(context).items():
            if name in terms:
                raise ValueError(f"{type(component).__name__} gives the loss term {name!r}, which another term has")
            if name not in component.names:
                raise ValueError(f"{type(component).__name__} gives {name!r} but declares only {component.names}")
            terms[name] = value


def weighted_sum(terms: Mapping[str, torch.Tensor], lambdas: Mapping[str, float]) -> torch.Tensor:
    """``sum(lambdas[name] * term)`` over the terms that have a weight, in the terms' order. A weight of 1 adds
    the term itself (no multiplication: the same arithmetic as writing the sum by hand)."""
    total: torch.Tensor | None = None
    for name, value in terms.items():
        if name not in lambdas:
            continue
        weight = lambdas[name]
        part = value if weight == 1.0 else weight * value
        total = part if total is None else total + part
    if total is None:
        raise ValueError(f"no loss term has a weight (terms: {', '.join(terms)}; lambdas: {dict(lambdas)})")
    return total
