"""wav2uti: speech (+ its transcript) -> ultrasound tongue imaging video."""

from articulate.directions import Direction, Link, Preset

_NET = "model.init_args.denoiser.init_args.net.init_args"
_DENOISER = "model.init_args.denoiser.init_args"

DIRECTION = Direction(
    name="wav2uti",
    summary="speech (+ transcript) -> ultrasound tongue video (audio-textual cascaded EDM; DNN baseline)",
    modalities=("ultrasound",),
    phantom="wav2uti",
    config="configs/wav2uti.yaml",
    inference={
        "lightning_modules.wav2uti_diffusion.Wav2UTIDiffusion": "articulate.inference.wav2uti.DiffusionGenerator",
        "lightning_modules.wav2uti_dnn.Wav2UTIDNN": "articulate.inference.wav2uti.FrameRegressor",
    },
    tools={
        "synthesize-uti": ("articulate.cli.synthesize_uti", "speech (+ transcript) -> ultrasound video with a wav2uti checkpoint"),
        "transcribe": ("articulate.cli.transcribe", "Whisper transcripts for a dataset, cached beside the audio"),
    },
    links=(
        # Clip geometry and audio rate: the DataModule's values.
        Link("data.init_args.clips", "model.init_args.clips"),
        Link("data.init_args.clips.resolution", f"{_NET}.resolution"),
        Link("data.init_args.clips.resolution", "model.init_args.network.init_args.out_size"),
        Link("data.init_args.sample_rate", "model.init_args.audio_encoder.init_args.sample_rate"),
        # One noise range and data scale for preconditioning, loss and sampler.
        Link(f"{_DENOISER}.sigma_min", "model.init_args.sampler.init_args.sigma_min"),
        Link(f"{_DENOISER}.sigma_max", "model.init_args.sampler.init_args.sigma_max"),
        Link(f"{_DENOISER}.sigma_data", "model.init_args.loss.init_args.sigma_data"),
        Link(f"{_DENOISER}.sigma_data", "model.init_args.standardizer.init_args.sigma_data"),
        Link("data.init_args.clips.resolution", "model.init_args.standardizer.init_args.resolution"),
        # Feature widths flow from the encoders through the fusion into the U-Net.
        Link("model.init_args.fusion.init_args.cond_dim", f"{_NET}.cond_dim"),
        Link("model.init_args.audio_encoder.init_args.n_mels", "model.init_args.fusion.init_args.audio_dim"),
        Link("model.init_args.audio_encoder.init_args.n_mels", "model.init_args.network.init_args.in_dim"),
        Link("model.init_args.text_encoder.init_args.dim", "model.init_args.fusion.init_args.text_dim"),
    ),
    presets={
        # QUICK trains the speech-prior diffusion unless a variant is named (`--variant paper`: the paper's)
        "quick": Preset(("quick",), {"audio_only": ("audio_only_quick",), "dnn": ("dnn_quick",),
                                     "speech_prior": ("speech_prior_quick",)},
                        default_variants=("speech_prior",)),
        # the real-data fit trains the speech-prior diffusion too, with the variant's own sampling (1,200 steps)
        "realdata_quick": Preset(("quick", "realdata_quick"), {"audio_only": ("audio_only_quick",), "dnn": ("dnn_quick",)},
                                 needs=("data.init_args.data_dir",), default_variants=("speech_prior",)),
    },
    variants=("audio_only", "dnn", "paper", "paper_encoders", "res64", "res96", "res112", "speech_prior"),
    reproduce="articulate.experiments.wav2uti_plan:REPRODUCTION",
    prepare="articulate.experiments.wav2uti_plan:train_prepare",
    bench="articulate.experiments.bench:wav2uti_sections",
)
