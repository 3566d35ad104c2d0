"""uti2contour networks: ultrasound frame -> one heatmap per tongue keypoint (and its decoding)."""

from articulate.networks.uti2contour.heatmaps import decode_heatmaps, gaussian_targets, masked_heatmap_loss
from articulate.networks.uti2contour.unet import HeatmapUNet

__all__ = ["HeatmapUNet", "decode_heatmaps", "gaussian_targets", "masked_heatmap_loss"]
