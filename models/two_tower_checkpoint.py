"""The two-tower trainer's checkpoints: one file per temperature, written atomically, read back safely.

A mixin of :class:`~pinrec.models.two_tower_loop.TwoTowerTrainer` (Yi et al., RecSys 2019):

* checkpoints (``checkpoint_dir/two_tower-tau<τ>.pt`` after every ``checkpoint_every`` epochs and
  the last): model, optimizer, epoch, history, config; read with ``torch.load(weights_only=True)``
  (plain tensors, dicts and lists: no class is pickled, so a checkpoint does not depend on the
  module that wrote it);
* a checkpoint resumes only a run with the same architecture (``_ARCHITECTURE``) and the same
  settings, pairs and pins (:mod:`pinrec.models.run_identity`).
"""
from __future__ import annotations

import os
from dataclasses import asdict

import torch

from pinrec.models.config import TwoTowerConfig
from pinrec.models.run_identity import check_resume
from pinrec.models.two_tower import TwoTower

_ARCHITECTURE = ("out_channels", "hidden_channels", "category_dim", "list_length", "pooling")


class TwoTowerCheckpoints:
    """Checkpointing of a two-tower trainer; the trainer sets ``cfg``, ``temperature``, ``device``,
    ``model``, ``optimizer``, ``history``, ``start_epoch`` and ``identity`` (the run's
    :func:`~pinrec.models.run_identity.run_identity`)."""

    cfg: TwoTowerConfig
    temperature: float
    device: torch.device
    model: TwoTower
    optimizer: torch.optim.Optimizer
    history: list[dict[str, float]]
    start_epoch: int
    identity: str

    # ----------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> str | None:
        if self.cfg.checkpoint_dir is None:
            return None
        return os.path.join(self.cfg.checkpoint_dir, f"two_tower-tau{self.temperature:g}.pt")

    def save_checkpoint(self, epoch: int) -> None:
        path = self.checkpoint_path
        if path is None:
            raise ValueError("two_tower.checkpoint_dir is not set")
        os.makedirs(self.cfg.checkpoint_dir, exist_ok=True)
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": epoch,
                 "history": self.history, "config": asdict(self.cfg), "temperature": self.temperature,
                 "identity": self.identity}
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)  # never a torn checkpoint

    def load_checkpoint(self, path: str) -> int:
        """Restores a checkpoint; returns the next epoch. ValueError when its architecture differs."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        clash = {k: (state["config"].get(k), getattr(self.cfg, k)) for k in _ARCHITECTURE
                 if state["config"].get(k) != getattr(self.cfg, k)}
        if clash:
            raise ValueError(f"checkpoint {path} has a different architecture (checkpoint, config): {clash}")
        check_resume(state.get("identity"), self.identity, path)  # another run's: other settings, pairs or pins
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = [dict(h) for h in state["history"]]
        self.start_epoch = int(state["epoch"]) + 1
        return self.start_epoch


__all__ = ["TwoTowerCheckpoints"]
