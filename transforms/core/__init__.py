"""The pure raster core: numpy + rasterio + fsspec. Never imports Beam or TensorFlow."""
