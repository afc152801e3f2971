"""AutoPeri-GNN: periodic crystal graphs, a latent generative model and its evaluation."""

__version__ = "0.1.0"
