"""mri2audio: a tagged-MRI sequence (2D+t, mid-sagittal) -> mel spectrogram -> waveform."""

from articulate.directions import Direction, Link, Preset


def square(size: int) -> list[int]:
    return [int(size), int(size)]


def grid(frames: int, size: int) -> list[int]:
    return [int(frames), int(size), int(size)]


DIRECTION = Direction(
    name="mri2audio",
    summary="tagged-MRI sequence -> mel spectrogram -> waveform (heterogeneous translator; Lip2AudSpec baseline)",
    modalities=("mri",),
    phantom="mri2audio",
    config="configs/mri2audio.yaml",
    inference={
        "lightning_modules.mri2audio_translator.MRI2AudioTranslator": "articulate.inference.mri2audio.Mri2AudioSynthesizer",
        "lightning_modules.mri2audio_translator.OracleMaskTranslator": "articulate.inference.mri2audio.Mri2AudioSynthesizer",
        "lightning_modules.lip2audspec.Lip2AudSpec": "articulate.inference.mri2audio.Mri2AudioSynthesizer",
    },
    tools={"synthesize-audio": ("articulate.cli.synthesize_audio",
                                "tagged MRI -> mel -> WAV with a trained mri2audio checkpoint")},
    links=(
        # The DataModule owns the data geometry; the model stores it for synthesis.
        Link("data.init_args.mel", "model.init_args.mel"),
        Link("data.init_args.mel", "model.init_args.translator.init_args.mel"),  # a source-filter F draws through it
        Link(("data.init_args.frames", "data.init_args.size"), "model.init_args.input_shape", grid),
        # As a list, the type the DataModule's hyperparameters hold: a logger merges both sets and Lightning
        # refuses a shared key whose values differ ((0.5, 99.5) != [0.5, 99.5]).
        Link("data.init_args.intensity_percentiles", "model.init_args.intensity_percentiles", list),
        Link("data.init_args.size", "model.init_args.network.init_args.image_size", square),
    ),
    presets={
        "quick": Preset(("quick",), {"lip2audspec": ("lip2audspec_quick",)}),
        "reproduce_quick": Preset(("quick", "reproduce_quick"), {"lip2audspec": ("lip2audspec_quick",)}),
    },
    variants=("frame_translator", "harmonic", "lip2audspec", "mean_frame", "no_attention", "no_gan", "no_pairwise", "oracle_mask"),
    reproduce="articulate.experiments.mri2audio_plan:REPRODUCTION",
    bench="articulate.experiments.bench:mri2audio_sections",
)
