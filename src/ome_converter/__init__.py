"""The OME converter WIPP plugin: converts a collection to tiled OME-TIFF or OME-Zarr."""
