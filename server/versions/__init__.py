"""One loaded model version's pipeline (runner + batcher + validator + recorder), assembled in one place."""
