"""PENDING REGISTRATION of the uti2contour direction (plain data, nothing imports it yet).

The framework is moving to one direction registry; until it lands, this branch does not edit the
two tables that exist today (``articulate/cli/main.py:TOOLS`` and
``callbacks/metrics.py:METRICS``). The lead wires these entries in when merging:

- ``TOOLS[name] = (module, help)`` for each entry of ``TOOLS``;
- ``METRICS[name] = (class name or path, (pred key, target key))`` for each entry of ``METRICS``
  (the class lives in ``articulate.metrics.contour``, not in ``articulate.metrics``' lazy table:
  add ``"ContourMSD": "articulate.metrics.contour"`` to ``articulate/metrics/__init__.py:_LAZY`` or
  let the registry take a full class path);
- the rest describes the direction for the registry (LightningModule / DataModule, default
  config, inference object, the phantom kind its default data comes from).

Tests call the tool through ``articulate.cli.track_contours.main([...])`` directly.
"""

from __future__ import annotations

DIRECTION = "uti2contour"

TOOLS: dict[str, tuple[str, str]] = {
    "track-contours": ("articulate.cli.track_contours",
                       "tongue contour keypoints per frame (video, images, .ult) -> DeepLabCut CSV [+ overlay video]"),
}

# name -> (class path, default (pred key, target key) in the validation/test outputs, default options)
METRICS: dict[str, tuple[str, tuple[str, str], dict]] = {
    # mode (a): tracked contours of generated vs real frames (wav2uti outputs protocol keys)
    "contour_msd": ("articulate.metrics.contour.ContourMSD", ("video_pred", "video_target"),
                    {"pred_kind": "images", "target_kind": "images", "contour_ckpt": None, "probe": "top"}),
    "contour_found": ("articulate.metrics.contour.ContourMSD", ("video_pred", "video_target"),
                      {"pred_kind": "images", "target_kind": "images", "contour_ckpt": None, "probe": "top",
                       "report": "found_fraction"}),
    # mode (b): generated frames vs the phantom's true surface keypoints (target key provided by the data)
    "contour_msd_truth": ("articulate.metrics.contour.ContourMSD", ("video_pred", "keypoints_target"),
                          {"pred_kind": "images", "target_kind": "keypoints", "contour_ckpt": None, "probe": "top"}),
}

DIRECTION_SPEC: dict[str, object] = {
    "name": DIRECTION,
    "lightning_modules": ["lightning_modules.uti2contour.ContourHeatmapModule"],
    "datamodule": "datamodules.uti2contour.ContourDataModule",
    "default_config": "configs/uti2contour.yaml",
    "quick_config": "configs/uti2contour/quick.yaml",
    "inference": "articulate.contour.tracker.ContourTracker",  # .from_checkpoint(path, device)
    "checkpoint_record_key": "articulate",  # checkpoint["articulate"]["direction"] == "uti2contour"
    "phantom_kind": "wav2uti",  # default data: the wav2uti phantom's ultrasound + its true tongue surface
    "phantom_keypoints": "articulate.contour.phantom_keypoints.phantom_tongue_keypoints",  # swap for the phantom's own
    "tools": list(TOOLS),
    "metrics": list(METRICS),
}
