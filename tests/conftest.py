"""Test configuration: one torch thread (on 2 cores the default oversubscribes badly)."""
import torch

torch.set_num_threads(1)
