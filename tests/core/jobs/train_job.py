"""A small but complete training run used by the resume and torchrun tests (run as a subprocess).

Dropout in the model, random augmentation (torch and numpy) in the dataset, a shuffled loader with
worker processes: everything that makes exact resume hard.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from safetensors.torch import save_file
from torch.utils.data import Dataset

import torchsci


class NoisyRegression(Dataset):
    def __init__(self, n: int = 52, augment: bool = True, slow: float = 0.0) -> None:
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 6, generator=g)
        self.y = (self.x[:, :3].sum(1, keepdim=True) - self.x[:, 3:].prod(1, keepdim=True))
        self.augment, self.slow = augment, slow

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        if self.slow:
            time.sleep(self.slow)
        x = self.x[i]
        if self.augment:
            x = x + 0.1 * torch.randn(6) + torch.from_numpy(np.random.normal(0, 0.05, 6)).float()
        return x, self.y[i]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume", default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--slow", type=float, default=0.0)
    ap.add_argument("--items", type=int, default=52)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torchsci.create_model("core/mlp", in_features=6, out_features=1, hidden=[32, 32], dropout=args.dropout)
    trainer = torchsci.Trainer(
        max_epochs=args.epochs, batch_size=args.batch_size, num_workers=args.workers, device="cpu", seed=7,
        run_dir=args.run_dir, checkpoint_every_n_steps=3, keep_last_checkpoints=None, scheduler="cosine",
        log_every_n_steps=2, tensorboard=False, verbose=False,
    )
    data = NoisyRegression(n=args.items, augment=not args.no_augment, slow=args.slow)
    result = trainer.fit(model, torchsci.RegressionTask(), data, val_data=NoisyRegression(20, augment=False),
                         resume=args.resume)
    if int(os.environ.get("RANK", 0)) == 0:
        save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, args.out)


if __name__ == "__main__":
    main()
