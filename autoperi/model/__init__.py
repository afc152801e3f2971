"""AutoPeri-GNN model parts: encoder, lattice latent, flow, decoders, and the formation-energy surrogate."""
