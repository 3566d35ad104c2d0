"""Inference object for uti2contour checkpoints, separate from training (in the style of vocos'
``pretrained.py``): ``ContourTracker.from_checkpoint(path, device)`` rebuilds the network from the
checkpoint's own record and runs it on frames.

The checkpoint is read with ``torch.load(..., weights_only=True)`` (tensors and plain containers
only: loading it cannot run code) and nothing from ``lightning_modules`` is imported. What the
tracker needs is stored by the LightningModule under ``checkpoint["articulate"]``
(:func:`tracker_record`):

- ``direction``: ``"uti2contour"``; ``format``: 1;
- ``network``: ``{"class_path", "init_args"}``; the class must live under ``articulate.networks.``
  (a checkpoint cannot make us import anything else);
- ``state_dict_prefix``: where the network's weights sit in ``checkpoint["state_dict"]``;
- ``input_size`` ``[H, W]``, ``keypoints`` (names, DLC bodyparts), ``tongue_points`` (how many
  leading keypoints form the contour), ``probe`` (where the probe is in the training images),
  ``normalisation`` and ``decoder`` settings.

Preprocessing (shared with the DataModule, so training and inference see the same input):
:func:`prepare_frames` (uint8 or float -> float [0, 1], uniform border stripes blacked out), then
the letterbox warp of :mod:`articulate.contour.geometry`. Keypoints come back in the pixels of the
frames given, in their orientation.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from articulate.contour.curves import contour_from_keypoints
from articulate.contour.geometry import apply_affine, clean_borders, flip_vertical_matrix, letterbox, warp_images
from articulate.errors import InputError
from articulate.networks.uti2contour.heatmaps import decode_heatmaps

__all__ = ["ContourTracker", "prepare_frames", "tracker_record", "input_matrix", "DIRECTION", "FORMAT"]

DIRECTION = "uti2contour"
FORMAT = 1
ALLOWED_PREFIX = "articulate.networks."


def prepare_frames(frames) -> torch.Tensor:
    """Frames ``[F, H, W]`` (uint8 0-255, or float: [0, 1], or 0-255 when above 1.5) -> float32 [0, 1],
    with uniform stripes along the border blacked out (as in training)."""
    if isinstance(frames, torch.Tensor):
        arr = frames.detach().cpu().numpy()
    else:
        arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"frames must be [F, H, W] with F > 0, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    else:
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError("frames contain NaN or infinite values")
        if out.max(initial=0.0) > 1.5:
            out = out / 255.0
        out = np.clip(out, 0.0, 1.0)
    return torch.from_numpy(np.stack([clean_borders(f, tol=0.5 / 255.0) for f in out]))


def input_matrix(frame_hw: tuple[int, int], input_size: tuple[int, int], flip: bool = False) -> np.ndarray:
    """Frame pixels -> network-input pixels (letterbox, after an optional vertical flip)."""
    m = letterbox(tuple(frame_hw), tuple(input_size))
    return m @ flip_vertical_matrix(frame_hw[0]) if flip else m


def tracker_record(network: nn.Module, input_size, keypoints, tongue_points: int, probe: str,
                   decoder: dict[str, Any] | None = None, state_dict_prefix: str = "network.") -> dict[str, Any]:
    """The plain-data record a checkpoint carries under ``"articulate"`` for :class:`ContourTracker`."""
    init_args = getattr(network, "init_args", None)
    if init_args is None:
        raise TypeError(f"{type(network).__name__} does not record its init_args; a tracker could not rebuild it")
    return {
        "direction": DIRECTION,
        "format": FORMAT,
        "network": {"class_path": f"{type(network).__module__}.{type(network).__qualname__}", "init_args": dict(init_args)},
        "state_dict_prefix": state_dict_prefix,
        "input_size": [int(input_size[0]), int(input_size[1])],
        "keypoints": [str(k) for k in keypoints],
        "tongue_points": int(tongue_points),
        "probe": str(probe),
        "normalisation": {"range": "unit", "uint8_divisor": 255.0, "clean_borders": True},
        "decoder": dict(decoder or {"smooth_sigma": 1.0}),
    }


def _build_network(record: dict[str, Any], where: Path | None) -> nn.Module:
    spec = record.get("network") or {}
    class_path = str(spec.get("class_path", ""))
    if not class_path.startswith(ALLOWED_PREFIX):
        raise InputError(where, f"network class {class_path!r} is not under {ALLOWED_PREFIX}; refusing to build it")
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise InputError(where, f"network class {class_path} is not available in this installation") from None
    return cls(**dict(spec.get("init_args") or {}))


class ContourTracker:
    """Frames -> tongue keypoints with a trained heatmap network.

    ``tracker(frames [F, H, W]) -> (keypoints [F, K, 2] float32 (x, y px of the given frames),
    confidence [F, K] in [0, 1])``; ``tracker.contours(keypoints)`` gives the interpolated curves.
    """

    def __init__(self, network: nn.Module, record: dict[str, Any], device: str | torch.device = "cpu"):
        self.network = network.eval()
        self.record = record
        self.input_size = tuple(int(v) for v in record["input_size"])
        self.keypoints = list(record["keypoints"])
        self.tongue_points = int(record["tongue_points"])
        self.probe = str(record.get("probe", "bottom"))
        self.smooth_sigma = float((record.get("decoder") or {}).get("smooth_sigma", 1.0))
        self.device = torch.device("cpu")
        self.to(device)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None) -> "ContourTracker":
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "checkpoint not found")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input problem
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(path, f"not a readable uti2contour checkpoint ({type(err).__name__}: {msg[:200]})") from None
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("articulate"), dict):
            raise InputError(path, "not a uti2contour checkpoint (no 'articulate' record; train it with "
                                   "`articulate fit --config configs/uti2contour.yaml`)")
        record = ckpt["articulate"]
        if record.get("direction") != DIRECTION:
            raise InputError(path, f"a {record.get('direction') or 'unknown'} checkpoint; this needs a {DIRECTION} one")
        if int(record.get("format", 0)) > FORMAT:
            raise InputError(path, f"checkpoint format {record.get('format')} is newer than this installation reads ({FORMAT})")
        net = _build_network(record, path)
        prefix = str(record.get("state_dict_prefix", "network."))
        state = {k[len(prefix):]: v for k, v in (ckpt.get("state_dict") or {}).items() if k.startswith(prefix)}
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise InputError(path, f"network weights do not match its configuration ({str(err).splitlines()[0]})") from None
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(net, record, device)

    def to(self, device: str | torch.device) -> "ContourTracker":
        self.device = torch.device(device)
        self.network.to(self.device)
        return self

    # ------------------------------------------------------------------ running
    def matrix(self, frame_hw: tuple[int, int], probe: str | None = None) -> np.ndarray:
        """Frame pixels -> network input pixels for frames with the probe at ``probe``."""
        flip = probe is not None and probe != self.probe
        return input_matrix(frame_hw, self.input_size, flip)

    @torch.no_grad()
    def predict_inputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network inputs ``[B, 1, H, W]`` -> keypoints in input px, confidence."""
        heat = self.network(inputs.to(self.device, torch.float32))
        stride = self.input_size[0] // heat.shape[-2]
        return decode_heatmaps(heat, stride=stride, smooth_sigma=self.smooth_sigma)

    @torch.no_grad()
    def __call__(self, frames, probe: str | None = None, batch_size: int = 32,
                 progress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = prepare_frames(frames)
        n, h, w = x.shape
        m = self.matrix((h, w), probe)
        inv = np.linalg.inv(m)
        show = progress if progress is not None else n > 4 * batch_size
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="tracking", unit="frame", leave=False)
        kps, confs = [], []
        for s in range(0, n, batch_size):
            chunk = x[s:s + batch_size].to(self.device)
            inputs = warp_images(chunk, np.broadcast_to(m, (chunk.shape[0], 3, 3)), self.input_size)[:, None]
            kp, conf = self.predict_inputs(inputs)
            kps.append(apply_affine(kp.double(), inv).float().cpu())
            confs.append(conf.float().cpu())
            if bar is not None:
                bar.update(chunk.shape[0])
        if bar is not None:
            bar.close()
        return torch.cat(kps), torch.cat(confs)

    def contours(self, keypoints, n: int = 100) -> list[np.ndarray | None]:
        """The interpolated tongue contour of each frame (``n`` points, None when < 2 points)."""
        kp = keypoints.cpu().numpy() if isinstance(keypoints, torch.Tensor) else np.asarray(keypoints)
        return [contour_from_keypoints(k[: self.tongue_points], n) for k in kp]
