"""What a model predicts: watched outputs and inputs, reference profiles, drift (pure, numpy only)."""
