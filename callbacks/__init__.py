"""Metric and media callbacks shared by both directions (chosen in YAML under ``trainer.callbacks``).

- :class:`callbacks.metrics.MetricsCallback`: Corr2D, PESQ, LPIPS, FID, FVD, RMSE, PSNR at
  validation and test, correct under DDP (see :mod:`articulate.metrics.dedup`).
- :class:`callbacks.media.MediaCallback`: W&B media each validation epoch (spectrograms, audio,
  attention masks, real-vs-generated videos, a metrics table); does nothing without a W&B logger.

Outputs protocol (what a LightningModule's ``validation_step`` / ``test_step`` returns)
--------------------------------------------------------------------------------------
A ``dict`` whose keys are all optional; each metric and each media panel uses the keys it needs
and skips silently when they are absent. Tensors may stay on the device (callbacks detach them).

=================== =========================== ==================================================
key                 shape                       meaning
=================== =========================== ==================================================
``mel_pred``        ``[B, 1, F, T]``            predicted mel, unit scale [0, 1] (``power_to_unit``)
``mel_target``      ``[B, 1, F, T]``            target mel, same scale
``audio_pred``      ``[B, L]`` (or list of [L]) synthesized waveform in [-1, 1]
``audio_target``    ``[B, L]`` (or list of [L]) reference waveform in [-1, 1]
``sample_rate``     ``int``                     rate of both waveforms (any; PESQ resamples to 16 kHz)
``attention``       ``[B, T, H, W]``            attention masks a_t in [0, 1] (mri2audio)
``mri``             ``[B, 1, T, H, W]``         input MRI frames in [0, 1] (shown under the masks)
``video_pred``      ``[B, 1, T, H, W]``         generated ultrasound, **unit scale [0, 1]**
``video_target``    ``[B, 1, T, H, W]``         real ultrasound, [0, 1]
``fps``             ``float``                   video frame rate for the media players (default 60)
``sample_index``    ``[B]`` int                 dataset index of each element (``batch["sample_index"]``)
``valid``           ``[B]`` bool                optional: False drops an element from every metric
=================== =========================== ==================================================

Diffusion modules that work in [-1, 1] convert with ``(x + 1) / 2`` before returning.
``sample_index`` is what makes metrics exact under DDP: ``DistributedSampler`` pads the last
batch by repeating samples and the metrics drop rows whose index they have already seen.
DataModules should therefore put ``sample_index`` (the dataset ``__getitem__`` index) in every
evaluation batch; without it metrics still work but count the padding duplicates.
"""
