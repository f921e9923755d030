"""The transfer protocol of the papers' tables: synthetic pre-training, zero-shot and few-shot
transfer to a real change dataset, in one command (``changen bench transfer CONFIG``)."""

from changen.protocol.config import ProtocolConfig, load_config
from changen.protocol.runner import run_protocol

__all__ = ["ProtocolConfig", "load_config", "run_protocol"]
