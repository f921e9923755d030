"""changen: synthetic change-detection data from single-temporal labels (Changen / GPCM).

An image and its semantic mask at one date become bitemporal (or multi-temporal) change data:
change events are simulated on the mask (create, remove, re-class objects), a synthesizer
renders the post-event image (copy-paste, inpainting, the Changen GAN, RS-DiT or
ChangeAnywhere diffusion), and the pairs are written in the layouts change detectors read
(LEVIR-CD, SECOND, GeoTIFF), with provenance and a dataset card.

Command line (``changen --help``)::

    changen demo                                   # the whole pipeline on a built-in world
    changen data inspect DATASET                   # what a dataset holds, format detected
    changen generate DATASET --out OUT             # a change dataset from a labelled one
    changen simulate DATASET --out OUT             # events only: masks over time
    changen train generator|diffusion DATASET --out RUN
    changen detect train|eval|predict ...          # change detectors
    changen export OUT --to parquet|hf|webdataset  # torchange's field names

Python API, by layer (each module's docstring says more):

* :mod:`changen.data.readers` — :func:`~changen.data.readers.open_dataset` reads a dataset
  folder (format detected) as :class:`~changen.sample.Scene` / ``ChangeSample`` items.
* :mod:`changen.events` — the change process: :class:`~changen.events.ChangeProcess`,
  :func:`~changen.events.simulate`, change labels; unlabeled mode (``propose_instances``).
* :mod:`changen.synthesis` — :func:`~changen.synthesis.load_synthesizer` by name or checkpoint.
* :mod:`changen.generation` — :func:`~changen.generation.generate_dataset` over a whole
  source, deterministic, sharded and resumable.
* :mod:`changen.detectors`, :mod:`changen.metrics` — change detectors, F1/IoU, FID/KID.

Docs: README.md and docs/ (formats, events, synthesis, training, transfer).
"""

__version__ = "0.1.0"
