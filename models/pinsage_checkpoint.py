"""PinSage's checkpoints and warm start: what a resume needs, written atomically, read back safely.

A mixin of :class:`~pinrec.models.pinsage_loop.PinSageTrainer` (Ying et al., KDD 2018, trained as in
:mod:`pinrec.models.pinsage_loop`):

* checkpoints (``checkpoint_dir/pinsage.pt``, after every ``checkpoint_every`` epochs and the last):
  model and optimizer state dicts, the epoch, the global torch RNG states, the loss history and the
  config; read back with ``torch.load(weights_only=True)`` (plain tensors, dicts and lists: no class
  is pickled, so a checkpoint does not depend on the module that wrote it);
* a checkpoint resumes only a run with the same architecture (:data:`ARCHITECTURE`) and the same
  settings and data (:mod:`pinrec.models.run_identity`);
* warm start: a previous version's weights, pin rows remapped (:mod:`pinrec.models.warm_start`).
"""
from __future__ import annotations

import os
from dataclasses import asdict

import torch
from torch import Tensor

from pinrec.models.config import PinSageTrainConfig
from pinrec.models.pinsage import PinSage
from pinrec.models.run_identity import check_resume
from pinrec.models.warm_start import warm_state

CHECKPOINT_FILE = "pinsage.pt"
# Fields that fix the parameters' shapes: a checkpoint only resumes a run that agrees on them.
ARCHITECTURE = ("hidden_channels", "out_channels", "num_layers", "id_embedding")


class PinSageCheckpoints:
    """Checkpointing of a PinSage trainer; the trainer sets ``cfg``, ``device``, ``model``,
    ``optimizer``, ``history``, ``start_epoch`` and ``identity`` (the run's
    :func:`~pinrec.models.run_identity.run_identity`)."""

    cfg: PinSageTrainConfig
    device: torch.device
    model: PinSage
    optimizer: torch.optim.Optimizer
    history: list[dict[str, float]]
    start_epoch: int
    identity: str

    # ----------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> str | None:
        return None if self.cfg.checkpoint_dir is None else os.path.join(self.cfg.checkpoint_dir, CHECKPOINT_FILE)

    def state_dict(self, epoch: int) -> dict:
        """Everything a resume needs after ``epoch`` (0-based) has finished."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": epoch,
                "rng": rng, "history": self.history, "config": asdict(self.cfg), "identity": self.identity}

    def save_checkpoint(self, epoch: int) -> None:
        path = self.checkpoint_path
        if path is None:
            raise ValueError("checkpoint_dir is not set")
        os.makedirs(self.cfg.checkpoint_dir, exist_ok=True)
        torch.save(self.state_dict(epoch), path + ".tmp")
        os.replace(path + ".tmp", path)  # a crash mid-write never leaves a torn checkpoint

    def load_checkpoint(self, path: str) -> int:
        """Restores a checkpoint; returns the next epoch to train. Raises ``ValueError`` when the
        checkpoint's architecture differs from this trainer's, or it belongs to another run (other settings
        or data: :mod:`pinrec.models.run_identity`)."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        saved = state["config"]
        clash = {k: (saved.get(k), getattr(self.cfg, k)) for k in ARCHITECTURE if saved.get(k) != getattr(self.cfg, k)}
        if clash:
            raise ValueError(f"checkpoint {path} was trained with a different architecture "
                             f"(checkpoint, config): {clash}")
        check_resume(state.get("identity"), self.identity, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        self.history = [dict(h) for h in state["history"]]
        self.start_epoch = int(state["epoch"]) + 1
        return self.start_epoch

    def warm_start(self, previous: dict[str, Tensor], rows: Tensor) -> None:
        """Start from a previous version's model weights instead of the random initialisation
        (:func:`pinrec.models.warm_start.warm_state`: ``rows`` (N,) maps each pin to its row in the
        previous version, -1 for a new pin). Call before :meth:`fit`; a checkpoint in
        ``checkpoint_dir`` still takes precedence (a resume continues the run it belongs to).
        Raises :class:`~pinrec.models.warm_start.WarmStartError` when the shapes differ."""
        self.model.load_state_dict(warm_state(previous, self.model.state_dict(), rows.to(self.device)))


__all__ = ["ARCHITECTURE", "CHECKPOINT_FILE", "PinSageCheckpoints"]
