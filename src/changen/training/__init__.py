"""Training loops (Lightning Fabric) for generators and detectors, and their checkpoints."""
