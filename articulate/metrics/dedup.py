"""Base class for metrics that must give the same value on 1 process and on N DDP ranks.

Why: ``DistributedSampler`` pads the dataset to a multiple of the world size by repeating the
first samples, so on N ranks a naive average counts some samples twice (e.g. 10 validation
samples on 4 ranks are scored as 12). Lightning's ``validate``/``test`` use it too.

Mechanism: every update stores **rows** (one row of ``width`` numbers per scored unit: per image,
per frame, per waveform) together with a **key** ``(sample_index, part)``:

- ``sample_index`` is the dataset index of the batch element (the DataModules put it in the batch
  as ``batch["sample_index"]``; modules forward it as ``outputs["sample_index"]``). Padding
  duplicates carry the same index as the sample they copy.
- ``part`` numbers the rows of one sample (frame t of a video; 0 for a spectrogram).

The states are torchmetrics "cat" states, so DDP sync gathers every rank's rows. ``compute``
then keeps the first row of each key (exact duplicates are dropped, wherever they were) and
sorts rows by key before reducing, so the result is bit-identical to a single-process run on the
same data whatever the rank split or batch order. Rows without a ``sample_index`` get key
``(-1, -1)`` and are all kept (nothing to de-duplicate against; a warning says so once when this
happens under DDP). Alternatively a boolean ``valid`` mask drops rows at update time (for a
DataModule that knows which elements are padding).

All states are 1-D float64 tensors (rows flattened) so that torchmetrics' "rank without data"
fallback (an empty 1-D tensor of the metric dtype) concatenates cleanly; float64 also keeps
sample indices exact up to 2**53.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class SampleMetric(Metric):
    """A metric that stores keyed rows and de-duplicates them at ``compute`` (see module docstring).

    Subclasses set ``width`` (numbers per row), call :meth:`_add` in ``update`` and reduce the
    de-duplicated, key-sorted rows returned by :meth:`_rows` in ``compute``.

    What ``callbacks.metrics.MetricsCallback`` reads of every metric (declared here, so a subclass changes what
    it needs and nothing is looked up by name): ``comparable`` and ``label`` (False: computed on stand-in
    features, logged as ``<name>_NOT_COMPARABLE`` with the label in the warning), ``extra_inputs`` (outputs
    passed by keyword besides the pair, e.g. PESQ's ``sample_rate``), :meth:`summary` and ``report`` (metrics
    with several figures: the others are logged as ``<name>_<key>``), ``failed`` (rows it could not score
    after ``compute``; None for a metric that never refuses one).
    """

    full_state_update = False
    is_differentiable = False
    width: int = 1
    registered_name: ClassVar[str | None] = None  # its name in configs (articulate.metrics.registry)
    default_inputs: ClassVar[tuple[str, str] | None] = None  # (pred, target) keys of the callbacks' outputs
    comparable: bool = True
    label: str = ""
    extra_inputs: tuple[str, ...] = ()
    report: str | None = None
    failed: int | None = None

    def summary(self) -> dict[str, float]:
        """Figures beside the one ``compute`` returns (``report``); none by default."""
        return {}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.add_state("keys", default=[], dist_reduce_fx="cat")
        self.add_state("values", default=[], dist_reduce_fx="cat")
        # float64 states (see module docstring); Metric.double() is a no-op by design, set_dtype is not.
        self.set_dtype(torch.float64)
        self._warned_unkeyed = False  # one warning for updates without sample_index under DDP

    # ------------------------------------------------------------------ update side
    def _add(
        self,
        rows: torch.Tensor,
        sample_index: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        parts_per_sample: int = 1,
    ) -> None:
        """Store ``rows`` ``[B * parts_per_sample, width]`` (sample-major) for a batch of B samples."""
        rows = rows.detach().reshape(-1, self.width).to(self.device, torch.float64)
        n = rows.shape[0]
        if n % parts_per_sample:
            raise ValueError(f"{n} rows is not a multiple of parts_per_sample={parts_per_sample}")
        b = n // parts_per_sample
        if sample_index is None:
            keys = torch.full((n, 2), -1.0, dtype=torch.float64, device=self.device)
        else:
            idx = torch.as_tensor(sample_index, device=self.device).reshape(-1).to(torch.float64)
            if idx.numel() != b:
                raise ValueError(f"sample_index has {idx.numel()} entries for a batch of {b} samples")
            if bool((idx < 0).any()):
                raise ValueError("sample_index must be >= 0 (dataset indices)")
            part = torch.arange(parts_per_sample, device=self.device, dtype=torch.float64)
            keys = torch.stack([idx.repeat_interleave(parts_per_sample), part.repeat(b)], dim=1)
        if valid is not None:
            keep = torch.as_tensor(valid, device=self.device).reshape(-1).bool()
            if keep.numel() != b:
                raise ValueError(f"valid has {keep.numel()} entries for a batch of {b} samples")
            keep = keep.repeat_interleave(parts_per_sample)
            rows, keys = rows[keep], keys[keep]
        self.keys.append(keys.reshape(-1))
        self.values.append(rows.reshape(-1))

    # ------------------------------------------------------------------ compute side
    def _rows(self) -> torch.Tensor:
        """All stored rows ``[N, width]`` after de-duplication, keyed rows sorted by key."""
        return self._keyed_rows()[1]

    def per_sample(self) -> dict[int, float]:
        """``sample_index -> value``: each keyed sample's first column averaged over its parts (NaN rows left out;
        a sample with none is absent), for paired tests per recording. Call it before ``reset``; under DDP it sees
        this process's rows unless called inside a synced ``compute``."""
        keys, rows = self._keyed_rows()
        out: dict[int, list[float]] = {}
        for key, value in zip(keys[:, 0].tolist(), rows[:, 0].tolist()):
            if key >= 0 and value == value:  # keyed, not NaN
                out.setdefault(int(key), []).append(value)
        return {k: sum(v) / len(v) for k, v in out.items()}

    def _keyed_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(keys [N, 2], rows [N, width])`` after de-duplication, keyed rows sorted by key (unkeyed last, -1)."""
        keys = dim_zero_cat(self.keys) if isinstance(self.keys, list) and self.keys else self.keys
        values = dim_zero_cat(self.values) if isinstance(self.values, list) and self.values else self.values
        if isinstance(keys, list) or keys.numel() == 0:
            return (torch.zeros(0, 2, dtype=torch.float64, device=self.device),
                    torch.zeros(0, self.width, dtype=torch.float64, device=self.device))
        keys = keys.reshape(-1, 2)
        values = values.reshape(-1, self.width)
        unkeyed = keys[:, 0] < 0
        if bool(unkeyed.any()) and torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_world_size() > 1 and not self._warned_unkeyed:
                self._warned_unkeyed = True
                warnings.warn(
                    f"{type(self).__name__}: updates without sample_index under DDP; samples that "
                    "DistributedSampler repeats to pad the last batch are counted twice",
                    stacklevel=2,
                )
        keyed_keys, keyed_vals = keys[~unkeyed], values[~unkeyed]
        if keyed_keys.shape[0]:
            uniq, inverse = torch.unique(keyed_keys, dim=0, return_inverse=True)  # sorted lexicographically
            pos = torch.arange(keyed_keys.shape[0], device=keys.device)
            first = torch.full((uniq.shape[0],), keyed_keys.shape[0], dtype=pos.dtype, device=keys.device)
            first = first.scatter_reduce(0, inverse, pos, reduce="amin")
            keyed_vals, keyed_keys = keyed_vals[first], uniq
        return torch.cat([keyed_keys, keys[unkeyed]], dim=0), torch.cat([keyed_vals, values[unkeyed]], dim=0)

    def num_rows(self) -> int:
        """Rows kept after de-duplication (on this process unless called inside a synced compute)."""
        return int(self._rows().shape[0])


def per_image_layout(pred: torch.Tensor) -> tuple[int, int]:
    """``(batch, images_per_sample)`` for ``[B, ..., H, W]`` (a bare ``[H, W]`` is one sample)."""
    if pred.ndim < 2:
        raise ValueError(f"expected images [..., H, W], got shape {tuple(pred.shape)}")
    if pred.ndim == 2:
        return 1, 1
    b = pred.shape[0]
    per = 1
    for d in pred.shape[1:-2]:
        per *= d
    return b, per


__all__ = ["SampleMetric", "per_image_layout"]
