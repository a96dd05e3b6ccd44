"""Where each core sits on the mesh, so spike traffic can be counted in tiles, hops and chips.

The mapping (``snnc.compiler.mapping``) decides how many cores each population takes and which
neurons each core holds; placement puts those cores on the chips' tile grids. The policy is the
simplest that keeps a network's traffic local: cores in mapping order (population by population,
core by core), filling a tile's cores, then the chip's tiles row by row (east-west first), then the
next chip. Messages route in dimension order (east-west, then north-south), one hop per tile
boundary, as Loihi's mesh does (Davies et al. 2018, §Chip Overview; loihi-limits.md "NoC / mesh").
Loihi 2's tile geometry is not public: its target assumes Loihi 1's, for hop counts only.

:func:`board_for` names the smallest of the target's boards that holds the mapped chips (a Loihi 2
network on one chip fits Oheo Gulch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from snnc.compiler.mapping import Mapping
from snnc.compiler.targets import Target


@dataclass(frozen=True)
class Placement:
    """Global core index -> chip and tile coordinates; ``offset`` is each population's first core."""

    offset: dict[str, int]
    chip: np.ndarray      # (cores,) int64
    tile: np.ndarray      # (cores,) tile index within its chip
    tile_x: np.ndarray    # (cores,) east-west tile coordinate
    tile_y: np.ndarray    # (cores,) north-south tile coordinate

    @property
    def cores(self) -> int:
        return int(self.chip.size)

    def routes(self) -> dict[str, np.ndarray]:
        """(cores, cores) tables from source core to destination core: east-west and north-south
        tile hops, whether the message stays in its tile, and whether it crosses chips. Hops across
        chips are counted on the chips' tile grids as if side by side (a lower bound)."""
        ew = np.abs(self.tile_x[:, None] - self.tile_x[None, :])
        ns = np.abs(self.tile_y[:, None] - self.tile_y[None, :])
        cross = self.chip[:, None] != self.chip[None, :]
        same_tile = ~cross & (self.tile[:, None] == self.tile[None, :])
        return {"ew_hops": ew, "ns_hops": ns, "same_tile": same_tile, "cross_chip": cross}

    def to_json(self) -> dict[str, object]:
        return {"policy": "mapping order; tiles filled core by core, chips tile by tile (row-major)",
                "chip": self.chip.tolist(), "tile_x": self.tile_x.tolist(), "tile_y": self.tile_y.tolist(),
                "offset": dict(self.offset)}


def place(mapping: Mapping, target: Target) -> Placement:
    """Put every core of ``mapping`` on ``target``'s chips (see the module docstring)."""
    offset, start = {}, 0
    for lm in mapping.layers:
        offset[lm.name] = start
        start += lm.cores
    g = np.arange(start, dtype=np.int64)
    within = g % target.cores_per_chip
    tile = within // target.cores_per_tile
    width = target.mesh_tiles[0]
    return Placement(offset=offset, chip=g // target.cores_per_chip, tile=tile,
                     tile_x=tile % width, tile_y=tile // width)


def board_for(chips: int, target: Target) -> dict[str, Any]:
    """The smallest of ``target``'s boards with at least ``chips`` chips: name, its chips, the chips
    used, whether it is the mapping's budgeted system, and where its chip count comes from."""
    fitting = [b for b in target.boards if b.chips >= chips]
    if not fitting:
        return {"name": None, "chips": None, "chips_used": int(chips), "fits": False,
                "note": f"no {target.chip} board snnc knows has {chips} chips"}
    b = min(fitting, key=lambda b: b.chips)
    return {"name": b.name, "chips": b.chips, "chips_used": int(chips), "fits": True, "note": b.note,
            "budgeted_system": target.system}
