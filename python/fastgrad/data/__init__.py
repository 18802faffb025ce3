"""fastgrad.data: datasets, the DataLoader and image transforms (torch.utils.data names).

    from fastgrad.data import TensorDataset, DataLoader
    loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True, seed=0)
    for xb, yb in loader: ...
"""
from . import transforms
from .dataloader import DataLoader, default_collate, default_convert
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "DataLoader",
           "default_collate", "default_convert", "transforms"]
