"""Run under torchrun by test_distributed.py: fit the tiny model on 24 Perov-5 crystals, save each rank's weights."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from autoperi.training import distributed
from autoperi.training.checkpoint import seed_everything
from autoperi.training.loop import fit
from tests.training.test_distributed import CFG
from tests.training.tiny import TinyRegressor, perov_graphs


def main(out_dir: str) -> None:
    job = distributed.init_distributed()
    graphs = perov_graphs(32)
    seed_everything(5 + job.rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = TinyRegressor()
    fit(model, graphs[:24], graphs[24:], CFG, out_dir, log_mlflow=False, progress=False)
    torch.save(model.state_dict(), Path(out_dir) / f"rank{job.rank}.pt")
    distributed.shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
