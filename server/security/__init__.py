"""Who may use the admin surface: the pure access policy, free of gRPC and of I/O beyond reading the token."""
