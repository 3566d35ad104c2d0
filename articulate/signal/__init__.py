"""Audio features with librosa as the reference: mel spectrograms, Griffin-Lim, resampling."""

from articulate.signal.griffin_lim import (
    GRIFFIN_LIM_METHODS,
    griffin_lim,
    mel_to_audio,
    mel_to_audio_librosa,
    mel_to_stft,
    resolve_griffin_lim,
    unit_mel_to_audio,
)
from articulate.signal.mel import (
    MelConfig,
    MelSpectrogram,
    as_mel_config,
    mel_basis,
    mel_librosa,
    power_to_db,
    power_to_unit,
    unit_to_power,
)
from articulate.signal.resample import resample

__all__ = [
    "MelConfig", "MelSpectrogram", "as_mel_config", "mel_basis", "mel_librosa", "power_to_db", "power_to_unit",
    "unit_to_power", "griffin_lim", "mel_to_audio", "mel_to_audio_librosa", "mel_to_stft", "resample",
    "GRIFFIN_LIM_METHODS", "resolve_griffin_lim", "unit_mel_to_audio",
]
