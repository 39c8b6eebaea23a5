"""The model repository: what is on disk, what is loaded, and in which state."""
