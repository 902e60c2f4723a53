"""Inference: device and precision choice, tiled upscaling, files in and out."""
