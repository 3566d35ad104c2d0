"""uti2contour: an ultrasound frame (or clip) -> tongue keypoints with confidence, and the interpolated contour.

The clinicians' measure of ultrasound (DeepLabCut's task, Wrench & Balch-Tomes 2022): it scores
generated ultrasound by the tongue contours it shows (the ``contour_msd`` metric).
"""

from articulate.directions import Direction, Link, Preset

DIRECTION = Direction(
    name="uti2contour",
    summary="ultrasound frame -> tongue keypoints + contour (heatmap U-Net; mean-shape and edge-tracer baselines)",
    modalities=("ultrasound",),
    phantom="wav2uti",  # the default data: the wav2uti phantom's ultrasound with its true tongue surface
    config="configs/uti2contour.yaml",
    inference={"lightning_modules.uti2contour.ContourHeatmapModule": "articulate.contour.tracker.ContourTracker"},
    presets={"quick": Preset(("quick",))},
    variants=("phantom64",),
    tools={"track-contours": ("articulate.cli.track_contours",
                              "tongue contour keypoints per frame (video, images, .ult) -> DeepLabCut CSV [+ overlay video]")},
    # the warm-up + cosine schedule ends with the fit (articulate.optim.WarmupCosineLR)
    links=(Link("trainer.max_steps", "model.init_args.lr_scheduler.init_args.total_steps"),),
)
