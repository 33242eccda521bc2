"""Pure torch / torch-geometric models: no paths, no Spark."""
from models.losses import max_margin_loss
from models.pinsage import PinSage, PinSageConv
from models.random_walk import (
    FixedNeighborhoods,
    ImportanceNeighborSampler,
    Neighborhood,
    PinBoardGraph,
)

__all__ = ["FixedNeighborhoods", "ImportanceNeighborSampler", "Neighborhood", "PinBoardGraph", "PinSage",
           "PinSageConv", "max_margin_loss"]
