"""Change event simulation (GPCM's F): from a mask at time t, the masks at t+1..t+T.

Objects (instances, or connected components per class) are created, removed or re-classed;
a :class:`ChangeProcess` chains the events into a time series and :class:`ChangeChain` gives
change labels between any two steps. Pure numpy/OpenCV; every function takes a
``numpy.random.Generator`` and the same seed gives byte-identical masks and logs.
"""

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

__all__ = [
    "CHANGE_IGNORE",
    "IGNORE_CODE",
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
    "apply_step",
    "binary_change",
    "change_counts",
    "create_objects",
    "decode_change",
    "default_fill",
    "event_maps",
    "event_regions",
    "extract_objects",
    "object_change",
    "reclass_objects",
    "remove_objects",
    "semantic_change",
    "simulate",
    "surrounding_class",
    "transform_shape",
    "unchanged",
]
