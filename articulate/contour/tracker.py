"""Inference object for uti2contour checkpoints, separate from training (in the style of vocos'
``pretrained.py``): ``ContourTracker.from_checkpoint(path, device)`` rebuilds the network from the
checkpoint and runs it on frames.

It is an :class:`articulate.inference.Predictor`: the checkpoint is read by the one safe reader
(``weights_only=True``: loading it cannot run code), the network is rebuilt from its YAML form in
``checkpoint["articulate"]["init"]`` (core classes only) and nothing from ``lightning_modules`` is
imported. The constructor arguments are what the tracker needs: the ``network``, ``input_size``
``[H, W]``, ``keypoints`` (names, DLC bodyparts), ``tongue_points`` (how many leading keypoints form
the contour), ``probe`` (where the probe is in the training images) and the decoder's ``smooth_sigma``.

Preprocessing (shared with the DataModule, so training and inference see the same input):
:func:`prepare_frames` (uint8 or float -> float [0, 1], uniform border stripes blacked out), then
the letterbox warp of :mod:`articulate.contour.geometry`. Keypoints come back in the pixels of the
frames given, in their orientation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from articulate.contour.curves import contour_from_keypoints
from articulate.contour.geometry import apply_affine, clean_borders, flip_vertical_matrix, letterbox, warp_images
from articulate.inference.base import Predictor
from articulate.networks.uti2contour.heatmaps import decode_heatmaps

__all__ = ["ContourTracker", "prepare_frames", "input_matrix", "DIRECTION"]

DIRECTION = "uti2contour"


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


class ContourTracker(Predictor):
    """Frames -> tongue keypoints with a trained heatmap network.

    ``tracker(frames [F, H, W]) -> (keypoints [F, K, 2] float32 (x, y px of the given frames),
    confidence [F, K] in [0, 1])``; ``tracker.contours(keypoints)`` gives the interpolated curves.
    """

    direction = DIRECTION

    def __init__(self, network: nn.Module, input_size: Sequence[int] = (128, 160), keypoints: Sequence[str] = (),
                 tongue_points: int = 11, probe: str = "bottom", smooth_sigma: float = 1.0):
        super().__init__()
        self.network = network.eval()
        self.input_size = tuple(int(v) for v in input_size)
        self.keypoints = [str(k) for k in keypoints]
        self.tongue_points = int(tongue_points)
        self.probe = str(probe)
        self.smooth_sigma = float(smooth_sigma)

    def checkpoint(self) -> dict:
        """A checkpoint of this tracker alone (what ``from_checkpoint`` reads; the network must record its
        ``init_args``, as ``HeatmapUNet`` does): for tools and tests that build trackers without training."""
        net = self.network
        spec = {"class_path": f"{type(net).__module__}.{type(net).__qualname__}", "init_args": dict(net.init_args)}
        init = {"network": spec, "input_size": list(self.input_size), "keypoints": self.keypoints,
                "tongue_points": self.tongue_points, "probe": self.probe, "smooth_sigma": self.smooth_sigma}
        return {"state_dict": {f"network.{k}": v for k, v in net.state_dict().items()},
                "articulate": {"direction": DIRECTION, "inference": "articulate.contour.tracker.ContourTracker",
                               "module": "lightning_modules.uti2contour.ContourHeatmapModule", "init": init}}

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
    def forward(self, frames, probe: str | None = None, batch_size: int = 32,
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
