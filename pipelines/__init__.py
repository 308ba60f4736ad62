"""One thin module per DVC stage: `python -m pipelines.<stage>`."""
