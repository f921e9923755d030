"""Change event simulation (GPCM's F): from a mask at time t, the masks at t+1..t+T.

Objects (instances, or connected components per class) are created, removed or re-classed;
a :class:`ChangeProcess` chains the events into a time series and :class:`ChangeChain` gives
change labels between any two steps. Pure numpy/OpenCV; every function takes a
``numpy.random.Generator`` and the same seed gives byte-identical masks and logs.

The unlabeled-mode pieces (:mod:`changen.events.unlabeled`: ``propose_instances``,
``prepare_instances``, ``agnostic_mask``, ``contour_map``, ``OBJECT_TAXONOMY``) are exported
here too, imported on first use (they pull in scikit-image, about 1 s).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports them
    from changen.events.unlabeled import (
        OBJECT_CLASS,
        OBJECT_TAXONOMY,
        agnostic_mask,
        contour_map,
        prepare_instances,
        propose_instances,
    )

from changen.events.create import CreateConfig, ShapeBank, create_objects, transform_shape
from changen.events.labels import (
    CHANGE_IGNORE,
    IGNORE_CODE,
    binary_change,
    change_counts,
    decode_change,
    object_change,
    semantic_change,
)
from changen.events.objects import MaskObject, ObjectTable, State, extract_objects
from changen.events.process import (
    ChangeChain,
    ChangeProcess,
    EventSpec,
    apply_step,
    simulate,
    unchanged,
)
from changen.events.records import EventRecord, EventTally
from changen.events.regions import event_maps, event_regions
from changen.events.remove import RemoveConfig, default_fill, remove_objects, surrounding_class
from changen.events.transition import (
    OPENEARTHMAP_KERNEL,
    ReclassConfig,
    TransitionKernel,
    reclass_objects,
)

_UNLABELED = (
    "OBJECT_CLASS",
    "OBJECT_TAXONOMY",
    "agnostic_mask",
    "contour_map",
    "prepare_instances",
    "propose_instances",
)


def __getattr__(name: str) -> Any:
    """The unlabeled-mode names, from :mod:`changen.events.unlabeled` on first use."""
    if name in _UNLABELED:
        from changen.events import unlabeled

        return getattr(unlabeled, name)
    raise AttributeError(f"module 'changen.events' has no attribute {name!r}")


__all__ = [
    "CHANGE_IGNORE",
    "IGNORE_CODE",
    "OBJECT_CLASS",
    "OBJECT_TAXONOMY",
    "OPENEARTHMAP_KERNEL",
    "ChangeChain",
    "ChangeProcess",
    "CreateConfig",
    "EventRecord",
    "EventSpec",
    "EventTally",
    "MaskObject",
    "ObjectTable",
    "ReclassConfig",
    "RemoveConfig",
    "ShapeBank",
    "State",
    "TransitionKernel",
    "agnostic_mask",
    "apply_step",
    "binary_change",
    "change_counts",
    "contour_map",
    "create_objects",
    "decode_change",
    "default_fill",
    "event_maps",
    "event_regions",
    "extract_objects",
    "object_change",
    "prepare_instances",
    "propose_instances",
    "reclass_objects",
    "remove_objects",
    "semantic_change",
    "simulate",
    "surrounding_class",
    "transform_shape",
    "unchanged",
]
