"""uti2contour core: tongue contours on ultrasound (no Lightning here).

- :mod:`~articulate.contour.curves`: contour splines through keypoints;
- :mod:`~articulate.contour.geometry`: letterbox and affine warps (image and keypoints together);
- :mod:`~articulate.contour.fan`: the fan (probe centre, depth, field of view) of exported images;
- :mod:`~articulate.contour.augment`: ultrasound augmentation;
- :mod:`~articulate.contour.baselines`: mean-shape baseline and classical edge tracer;
- :mod:`~articulate.contour.tracker`: ``ContourTracker`` inference object for checkpoints;

The network is :class:`articulate.networks.uti2contour.HeatmapUNet`; the metric
:class:`articulate.metrics.contour.ContourMSD`; DLC files :mod:`articulate.readers.dlc`.
"""
