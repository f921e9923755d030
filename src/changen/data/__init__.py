"""Reading, writing and generating the rasters and datasets changen works on."""
