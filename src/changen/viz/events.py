"""Preview grids of simulated change chains: masks over time with events outlined."""

from __future__ import annotations

import cv2
import numpy as np

from changen.events import ChangeChain
from changen.events.regions import event_maps
from changen.sample import Taxonomy
from changen.viz.grid import make_grid, overlay_events

PREVIEW_CELL = 256


def chain_preview(
    image: np.ndarray,
    chain: ChangeChain,
    taxonomy: Taxonomy,
    contours: list[np.ndarray] | None = None,
    cell: int = PREVIEW_CELL,
) -> np.ndarray:
    """Grid: masks t0..tT (created green, removed red, reclassed yellow), then the image and
    the change map of each step, then (unlabeled mode) the contour maps."""
    h, w = chain.masks.shape[1:]
    f = cell / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))

    def small(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)

    steps = chain.masks.shape[0]
    masks: list[np.ndarray | None] = [taxonomy.colorize(small(chain.masks[0]))]
    changes: list[np.ndarray | None] = [image]
    for k in range(1, steps):
        created, removed, reclassed = (small(r) > 0 for r in event_maps(chain, k))
        colored = taxonomy.colorize(small(chain.masks[k]))
        masks.append(
            overlay_events(colored, created, removed, reclassed, thickness=2, legend=k == 1)
        )
        changes.append(chain.change(k - 1, k) == 1)
    rows = [masks, changes]
    labels = ["masks", "image | change"]
    if contours is not None:
        rows.append([c.astype(bool) for c in contours])
        labels.append("contours")
    titles = [f"t{k}" for k in range(steps)]
    return make_grid(rows, titles=titles, row_labels=labels, cell=cell)
