"""One box: the configuration, processes and commands (`zhida up/down/call/demo`) of a single-node stack."""
