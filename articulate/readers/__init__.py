"""Readers and writers for the files users bring: audio (also inside video files), MRI sequences,
ultrasound (UltraSuite / TaL / AAA), ultrasound as video (fan detection, orientation, sync), Praat
TextGrids, dataset folders and manifests. Bad input raises ``articulate.errors.InputError`` naming
the file; every writer is atomic."""

from articulate.readers.audio import audio_info, read_audio, resample_audio, write_audio
from articulate.readers.dataset_index import Recording, index_dataset, read_manifest, write_manifest
from articulate.readers.fan import FanRegion, detect_fan, fit_frames
from articulate.readers.mri import MRISequence, read_mri, write_mri
from articulate.readers.textgrid import TextGrid, read_textgrid, textgrid_words
from articulate.readers.ultrasound import (
    FanConverter,
    UltrasoundParams,
    UltrasoundUtterance,
    read_param,
    read_ult,
    read_utterance,
    write_param,
    write_ult,
    write_utterance,
)
from articulate.readers.video import read_video, write_video
from articulate.readers.video_utterance import VideoUtterance, read_video_utterance

__all__ = [
    "audio_info", "read_audio", "resample_audio", "write_audio",
    "Recording", "index_dataset", "read_manifest", "write_manifest",
    "MRISequence", "read_mri", "write_mri",
    "FanConverter", "UltrasoundParams", "UltrasoundUtterance", "read_param", "read_ult", "read_utterance",
    "write_param", "write_ult", "write_utterance",
    "read_video", "write_video", "VideoUtterance", "read_video_utterance",
    "FanRegion", "detect_fan", "fit_frames", "TextGrid", "read_textgrid", "textgrid_words",
]
