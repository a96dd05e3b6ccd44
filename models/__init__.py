"""snnc.models: the PyTorch side: CUBA-LIF layers, training rules, datasets, checkpoints."""
