"""Pictures of data: sample grids and event overlays (static HTML galleries build on these)."""

from changen.viz.grid import make_grid, overlay_events, render_cell, save_png

__all__ = ["make_grid", "overlay_events", "render_cell", "save_png"]
