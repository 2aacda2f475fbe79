"""Generated gRPC code of proto/zhida/v1 (`make proto`)."""
