"""Load testing for Open Inference Protocol servers: `python -m loadtest`."""
