"""The compose stack built and run on a real Docker engine (marker `stack`)."""
