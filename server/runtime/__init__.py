"""Model runtimes behind one Runner interface."""
