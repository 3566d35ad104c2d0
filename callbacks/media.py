"""W&B media each validation epoch: what a researcher looks at to judge a model, beside the numbers.

From the first ``num_samples`` validation elements of rank 0 (outputs protocol in :mod:`callbacks`):

- ``media/spectrograms``: target | predicted | predicted - target (low frequencies at the bottom;
  magma for the mels, a diverging map for the difference),
- ``media/audio_target`` and ``media/audio_pred``: audio players, reference vs synthesized,
- ``media/attention``: MRI frames above their attention masks (up to ``max_frames`` frames),
- ``media/videos``: real | generated ultrasound side by side (H.264 MP4 written with
  imageio-ffmpeg, because ``wandb.Video`` cannot encode numpy arrays without moviepy),
- ``media/metrics``: a table of every ``val/*`` value logged this epoch.

Without a W&B logger (CSV, TensorBoard, none) the callback does nothing, so it can stay in
every config. Put it after :class:`callbacks.metrics.MetricsCallback` in ``trainer.callbacks``
(media are logged in ``on_validation_end``, after all epoch metrics exist, either way).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from articulate.utils.images import enlarge

SEPARATOR = 2  # pixels between panels


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def colorize(img: np.ndarray, cmap: str = "magma", vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """2D array -> uint8 RGB through a matplotlib colormap (no figure, so it is cheap)."""
    from matplotlib import colormaps

    scaled = np.clip((np.nan_to_num(img) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    return (colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)


def hstack(panels: list[np.ndarray], value: int = 255) -> np.ndarray:
    """Panels of equal height side by side with a white separator."""
    h = panels[0].shape[0]
    sep = np.full((h, SEPARATOR, *panels[0].shape[2:]), value, dtype=panels[0].dtype)
    out: list[np.ndarray] = []
    for i, p in enumerate(panels):
        out += [p] if i == 0 else [sep, p]
    return np.concatenate(out, axis=1)


def spectrogram_panel(target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``[F, T]`` unit-scale mels -> RGB ``target | predicted | difference``."""
    t, p = np.flipud(target), np.flipud(pred)
    return hstack([colorize(t), colorize(p), colorize(p - t, "RdBu_r", -1.0, 1.0)])


def attention_panel(masks: np.ndarray, frames: np.ndarray | None, max_frames: int) -> np.ndarray:
    """``[T, H, W]`` masks (and frames) -> RGB montage: frames on top, masks below."""
    idx = np.linspace(0, masks.shape[0] - 1, min(max_frames, masks.shape[0])).round().astype(int)
    rows = []
    if frames is not None:
        rows.append(hstack([colorize(frames[i], "gray") for i in idx]))
    rows.append(hstack([colorize(masks[i], "viridis") for i in idx]))
    if len(rows) == 1:
        return rows[0]
    sep = np.full((SEPARATOR, rows[0].shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([rows[0], sep, rows[1]], axis=0)


def side_by_side_video(real: np.ndarray, fake: np.ndarray, min_height: int = 192) -> np.ndarray:
    """``[T, H, W]`` real and generated in [0, 1] -> ``[T, kH, k(2W + sep)]`` uint8 (white separator), with the
    integer ``k`` that makes the video at least ``min_height`` tall (32-64 px frames are unreadable in W&B)."""
    t = min(real.shape[0], fake.shape[0])
    frames = [enlarge(hstack([(np.clip(real[i], 0, 1) * 255).round().astype(np.uint8),
                              (np.clip(fake[i], 0, 1) * 255).round().astype(np.uint8)]), min_height) for i in range(t)]
    return np.stack(frames)


class MediaCallback(Callback):
    """Log W&B media every ``every_n_epochs`` validation epochs (see the module docstring).

    Args:
        num_samples: validation elements shown (taken from the first batches of rank 0).
        every_n_epochs: media cadence (media cost upload space, metrics do not).
        max_frames: frames shown in an attention montage.
        default_fps: video frame rate when the outputs carry no ``fps``.
    """

    def __init__(self, num_samples: int = 4, every_n_epochs: int = 1, max_frames: int = 8, default_fps: float = 60.0):
        super().__init__()
        self.num_samples = int(num_samples)
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.max_frames = int(max_frames)
        self.default_fps = float(default_fps)
        self._buffer: list[dict[str, Any]] = []
        self._scratch: Path | None = None

    @staticmethod
    def wandb_loggers(trainer: Trainer) -> list[WandbLogger]:
        return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]

    def _active(self, trainer: Trainer) -> bool:
        return (not trainer.sanity_checking and trainer.is_global_zero and bool(self.wandb_loggers(trainer))
                and trainer.current_epoch % self.every_n_epochs == 0)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._buffer = []

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self._active(trainer) or not isinstance(outputs, dict) or len(self._buffer) >= self.num_samples:
            return
        index = outputs.get("sample_index")
        if index is None and isinstance(batch, dict):
            index = batch.get("sample_index")
        sizes = [len(v) for k, v in outputs.items() if k != "sample_index" and (
            isinstance(v, list) or (isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim >= 1))]
        b = min(sizes) if sizes else 0
        for i in range(min(b, self.num_samples - len(self._buffer))):
            item: dict[str, Any] = {}
            for key in ("mel_pred", "mel_target", "audio_pred", "audio_target", "attention", "mri",
                        "video_pred", "video_target"):
                if outputs.get(key) is not None:
                    item[key] = _np(outputs[key][i])
            item["sample_rate"] = outputs.get("sample_rate")
            item["fps"] = float(outputs.get("fps") or self.default_fps)
            item["index"] = int(index[i]) if index is not None else len(self._buffer)
            self._buffer.append(item)

    def build_media(self, trainer: Trainer) -> dict[str, Any]:
        """The dict passed to ``wandb.log`` (public so that tools can render the same panels)."""
        import wandb

        from articulate.readers.video import write_video

        media: dict[str, Any] = {}
        spec, a_t, a_p, att, vids = [], [], [], [], []
        for it in self._buffer:
            cap = f"sample {it['index']}"
            if "mel_pred" in it and "mel_target" in it:
                spec.append(wandb.Image(enlarge(spectrogram_panel(it["mel_target"].squeeze(0), it["mel_pred"].squeeze(0))),
                                        caption=f"{cap}: target | predicted | predicted - target"))
            if it.get("sample_rate"):
                if "audio_target" in it:
                    a_t.append(wandb.Audio(np.clip(it["audio_target"].reshape(-1), -1, 1), sample_rate=int(it["sample_rate"]),
                                           caption=f"{cap}: target"))
                if "audio_pred" in it:
                    a_p.append(wandb.Audio(np.clip(it["audio_pred"].reshape(-1), -1, 1), sample_rate=int(it["sample_rate"]),
                                           caption=f"{cap}: synthesized"))
            if "attention" in it:
                frames = it["mri"].reshape(-1, *it["mri"].shape[-2:]) if "mri" in it else None
                att.append(wandb.Image(enlarge(attention_panel(it["attention"], frames, self.max_frames)),
                                       caption=f"{cap}: MRI frames (top) and attention masks (bottom)"))
            if "video_pred" in it and "video_target" in it:
                if self._scratch is None:
                    self._scratch = Path(tempfile.mkdtemp(prefix="articulate-media-"))
                path = self._scratch / f"epoch{trainer.current_epoch}-sample{it['index']}.mp4"
                real = it["video_target"].reshape(-1, *it["video_target"].shape[-2:])
                fake = it["video_pred"].reshape(-1, *it["video_pred"].shape[-2:])
                write_video(path, side_by_side_video(real, fake), fps=it["fps"])
                vids.append(wandb.Video(str(path), caption=f"{cap}: real | generated"))
        for key, items in (("media/spectrograms", spec), ("media/audio_target", a_t), ("media/audio_pred", a_p),
                           ("media/attention", att), ("media/videos", vids)):
            if items:
                media[key] = items
        rows = [[k, float(v)] for k, v in sorted(trainer.callback_metrics.items()) if k.startswith("val/")]
        if rows:
            media["media/metrics"] = wandb.Table(columns=["metric", "value"], data=rows)
        return media

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active(trainer):
            return
        media = self.build_media(trainer)
        if media:
            for logger in self.wandb_loggers(trainer):
                logger.experiment.log({**media, "trainer/global_step": trainer.global_step})
        self._buffer = []

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # wandb copies media into the run folder when logging, so the scratch files can go.
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


__all__ = ["MediaCallback", "spectrogram_panel", "attention_panel", "side_by_side_video", "colorize", "enlarge"]
