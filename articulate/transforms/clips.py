"""The clip a wav2uti model is trained on, one value shared by its DataModule and its model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClipGeometry:
    """The clips of ultrasound video and their speech (``data.init_args.clips``; linked to the model, so it is set once).

    Args:
        resolution: frame size in pixels (64 / 96 / 112 in the paper).
        frames: frames per clip (the denoiser's window).
        fps: video frame rate of the model (recordings at another rate are resampled in time).
        context: frames of speech before and after each clip that its audio and features carry (the model's view
            of the speech around the clip).
    """

    resolution: int = 64
    frames: int = 16
    fps: float = 60.0
    context: int = 0

    def __post_init__(self) -> None:
        from articulate.errors import InputError

        # Sizes fail when the config is read, not inside the fan conversion after the data was indexed.
        for name, value, least in (("resolution", self.resolution, 2), ("frames", self.frames, 1),
                                   ("context", self.context, 0)):
            if int(value) < least:
                raise InputError(None, f"clips.{name} must be at least {least}, got {value}")
        if not float(self.fps) > 0:
            raise InputError(None, f"clips.fps must be positive, got {self.fps}")

