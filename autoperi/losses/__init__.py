"""Loss terms of AutoPeri-GNN (seed §3). Import the submodules directly, e.g. `from autoperi.losses.physics import
radial_distribution`; nothing is imported here so that loading one term never pulls in the others."""
