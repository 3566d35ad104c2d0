"""Articulate: translate between images of the moving tongue (tagged MRI, ultrasound) and speech."""

__version__ = "0.1.0"
