"""Embedding networks for raw signals: a 1-D CNN over time, shared by every channel
(region or sensor), pooled over channels.

The input is the standardised used feature columns (see
:class:`~vbi_dask.train.estimator.FeatureStandardizer`); the columns of a ``raw``
feature (``raw[t,c]``, or ``<signal>.raw[t,c]``) are put back into each signal's
(channel, time) grid (a column dropped as constant stays 0, its standardised mean), and
every channel's series goes through the same stack of convolutions (ReLU, max-pooling by
2 over time), then its mean and maximum over time; the channels' outputs are then pooled
by their mean and their maximum, so the result does not depend on the order of regions or
sensors (nor, nearly, on a shift in time). Other used columns (e.g. band powers) are passed through beside the pooled
outputs, and a head MLP (``EstimatorConfig.embedding``'s widths) maps everything to the
flow's condition.

>>> net = SignalCNN(["eeg.raw[0,0]", "eeg.raw[0,1]", "eeg.raw[1,0]", "eeg.raw[1,1]", "psd_peak_hz"], widths=(8,))
>>> net(torch.zeros(3, 5)).shape
torch.Size([3, 33])
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["SignalCNN", "raw_columns", "pooled_statistics"]

_RAW = re.compile(r"(?:(?P<signal>.+)\.)?raw\[(?P<t>\d+),(?P<c>\d+)\]")


def raw_columns(names: Sequence[str]) -> dict[str, list[tuple[int, int, int]]]:
    """The ``raw`` feature columns among ``names``, by signal (``""``: unnamed), as
    (position in ``names``, time index, channel)."""
    groups: dict[str, list[tuple[int, int, int]]] = {}
    for k, name in enumerate(names):
        match = _RAW.fullmatch(str(name))
        if match:
            groups.setdefault(match["signal"] or "", []).append((k, int(match["t"]), int(match["c"])))
    return groups


def pooled_statistics(names: Sequence[str], mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column z-scoring statistics with those of the ``raw`` columns replaced by their
    channel's, pooled over time (the mean and standard deviation of all its samples).

    Z-scoring each raw column on its own would subtract the average waveform and divide by
    each sample's spread, turning an amplitude into a signed deviation whose sign is a
    phase, which a network pooling over time cannot read; one scale per channel keeps the
    waveform."""
    mean, std = np.array(mean, dtype=np.float64), np.array(std, dtype=np.float64)
    for signal, columns in raw_columns(names).items():
        positions, _, channels = (np.array(v) for v in zip(*columns))
        for channel in np.unique(channels):
            k = positions[channels == channel]
            m = mean[k].mean()
            second = (std[k] ** 2 + mean[k] ** 2).mean()
            mean[k], std[k] = m, np.sqrt(max(second - m * m, 0.0)) or 1.0
    return mean, std


class _Tower(nn.Module):
    """The per-channel CNN of one signal: (batch, channel x time columns) -> (batch, 4 * width)."""

    def __init__(
        self, positions: np.ndarray, flat: np.ndarray, n_time: int, n_channels: int, widths: Sequence[int], kernel: int
    ):
        super().__init__()
        self.n_time, self.n_channels = int(n_time), int(n_channels)
        self.register_buffer("positions", torch.as_tensor(positions, dtype=torch.long))
        self.register_buffer("flat", torch.as_tensor(flat, dtype=torch.long))
        layers: list[nn.Module] = []
        n_in, length = 1, self.n_time
        for width in widths:
            layers += [nn.Conv1d(n_in, width, kernel, padding=kernel // 2), nn.ReLU()]
            if length >= 2:
                layers.append(nn.MaxPool1d(2))
                length //= 2
            n_in = width
        self.convolutions = nn.Sequential(*layers)
        self.n_out = 4 * n_in  # (mean, max over time) x (mean, max over channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        grid = x.new_zeros(batch, self.n_time * self.n_channels)
        grid[:, self.flat] = x[:, self.positions]
        series = grid.view(batch, self.n_time, self.n_channels).transpose(1, 2).reshape(-1, 1, self.n_time)
        features = self.convolutions(series)  # (batch * channel, width, time)
        pooled = torch.cat([features.mean(dim=2), features.amax(dim=2)], dim=1)  # over time: level and peak
        per_channel = pooled.view(batch, self.n_channels, -1)
        return torch.cat([per_channel.mean(dim=1), per_channel.amax(dim=1)], dim=1)


class SignalCNN(nn.Module):
    """A 1-D CNN over each raw signal's channels (see the module docstring).

    Parameters
    ----------
    feature_names : the names of the columns the network receives (the posterior's used
        features), among which the ``raw`` columns.
    widths : output channels of each convolution.
    kernel : the convolutions' kernel length (odd: same-length outputs).
    head : widths of the MLP after pooling (empty: the pooled outputs and the other
        columns, concatenated, are the output).

    Raises
    ------
    ValueError
        No ``raw`` column among ``feature_names``, no width, or a bad kernel.
    """

    def __init__(
        self, feature_names: Sequence[str], widths: Sequence[int] = (16, 32), kernel: int = 5, head: Sequence[int] = ()
    ):
        super().__init__()
        groups = raw_columns(feature_names)
        if not groups:
            raise ValueError("SignalCNN needs 'raw' feature columns (raw[t,c]); add the 'raw' feature and select it")
        if not widths or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must be positive channel counts, got {tuple(widths)}")
        if int(kernel) < 1 or int(kernel) % 2 == 0:
            raise ValueError(f"kernel must be an odd positive length, got {kernel}")
        self.towers = nn.ModuleDict()
        used = set()
        for signal, columns in groups.items():
            positions, times, channels = (np.array(v) for v in zip(*columns))
            n_time, n_channels = int(times.max()) + 1, int(channels.max()) + 1
            tower = _Tower(positions, times * n_channels + channels, n_time, n_channels, widths, int(kernel))
            self.towers[signal or "signal"] = tower
            used.update(positions.tolist())
        others = [k for k in range(len(feature_names)) if k not in used]
        self.register_buffer("others", torch.as_tensor(np.array(others, dtype=np.int64), dtype=torch.long))
        n_out = sum(t.n_out for t in self.towers.values()) + len(others)
        layers: list[nn.Module] = []
        for k, width in enumerate(head):
            layers.append(nn.Linear(n_out, int(width)))
            if k < len(head) - 1:
                layers.append(nn.ReLU())
            n_out = int(width)
        self.head = nn.Sequential(*layers)
        self.n_out = n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [tower(x) for tower in self.towers.values()]
        if len(self.others):
            parts.append(x[:, self.others])
        return self.head(torch.cat(parts, dim=1))
