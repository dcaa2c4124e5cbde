"""Sums over the positions a tile owns, a band of rows at a time so that each copy stays small."""

from __future__ import annotations

from torch import Tensor

# Positions copied at a time when owned features are turned into rows, so the copy stays small.
_BAND_POSITIONS = 2**16


def bands(height: int, width: int) -> list[slice]:
    """Row slices of a ``height``×``width`` block, each of about ``_BAND_POSITIONS`` positions."""
    step = max(1, _BAND_POSITIONS // width)
    return [slice(start, start + step) for start in range(0, height, step)]


def gram_sum(owned: Tensor) -> Tensor:
    """ΣRowsᵀRows over the owned positions (not divided by their count), a band of rows at a time."""
    channels, height, width = owned.shape[1:]
    total = owned.new_zeros(channels, channels)
    for band in bands(height, width):
        band_rows = rows(owned[..., band, :])
        total.addmm_(band_rows.T, band_rows)
    return total


def weighted_gram_sums(owned: Tensor, weights: Tensor) -> Tensor:
    """Σ w_r(p)·F_pF_pᵀ over the owned positions for each region r of ``weights`` ([R, h, w], the owned block's
    part of each region's weights): [R, C, C], a band of rows at a time."""
    channels, height, width = owned.shape[1:]
    regions = weights.shape[0]
    total = owned.new_zeros(regions, channels, channels)
    for band in bands(height, width):
        band_rows = rows(owned[..., band, :])
        band_weights = weights[:, band, :].reshape(regions, -1)
        for region in range(regions):
            total[region].addmm_(band_rows.T, band_rows * band_weights[region][:, None])
    return total


def rows(owned: Tensor) -> Tensor:
    """Owned positions as rows of a [positions, channels] matrix (a copy: an owned block is not contiguous)."""
    return owned.permute(0, 2, 3, 1).reshape(-1, owned.shape[1])
