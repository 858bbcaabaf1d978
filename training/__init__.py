"""Training of the memory model: data generators, training loop and device logistics."""
