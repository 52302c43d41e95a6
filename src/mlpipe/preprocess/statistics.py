"""Per-channel mean and standard deviation of the training split, accumulated chunk by chunk.

A channel is a sample's first dimension: the colour of an image (C, H, W), the sensor of a signal (C, T),
the feature of a vector (F,). uint8 data gets exact statistics of its values scaled to [0, 1] (what
training divides by 255 before normalising) from 256-bin histograms; float data gets them in its own units,
from float64 sums shifted by the first chunk's means (so data far from zero loses no precision).
"""

from __future__ import annotations

import numpy as np


class ByteStatistics:
    def __init__(self, channels: int):
        self.histograms = np.zeros((channels, 256), dtype=np.int64)

    def add(self, chunk: np.ndarray) -> None:
        for channel in range(chunk.shape[1]):
            self.histograms[channel] += np.bincount(chunk[:, channel].ravel(), minlength=256)

    def result(self) -> tuple[list[float], list[float]]:
        values = np.arange(256, dtype=np.float64) / 255
        total = self.histograms.sum(axis=1)
        mean = (self.histograms * values).sum(axis=1) / total
        variance = (self.histograms * values**2).sum(axis=1) / total - mean**2
        return [float(m) for m in mean], [float(s) for s in np.sqrt(np.maximum(variance, 0))]


class FloatStatistics:
    def __init__(self, channels: int):
        self.shift: np.ndarray | None = None
        self.count = 0
        self.sums = np.zeros(channels)
        self.squares = np.zeros(channels)

    def add(self, chunk: np.ndarray) -> None:
        if not len(chunk):
            return
        values = np.moveaxis(chunk, 1, 0).reshape(chunk.shape[1], -1).astype(np.float64)
        if self.shift is None:
            self.shift = values.mean(axis=1)
        centred = values - self.shift[:, None]
        self.count += values.shape[1]
        self.sums += centred.sum(axis=1)
        self.squares += (centred**2).sum(axis=1)

    def result(self) -> tuple[list[float], list[float]]:
        centred_mean = self.sums / self.count
        variance = self.squares / self.count - centred_mean**2
        mean = self.shift + centred_mean
        return [float(m) for m in mean], [float(s) for s in np.sqrt(np.maximum(variance, 0))]


def channel_statistics(dtype: np.dtype, channels: int) -> ByteStatistics | FloatStatistics:
    return ByteStatistics(channels) if dtype == np.uint8 else FloatStatistics(channels)
