"""The training runtime: mesh, sharded state, loop, checkpoints, metrics, multi-host."""

from jaxcompress.train.loop import TrainingInterrupted, train
from jaxcompress.train.task import Task, register_task

__all__ = ["Task", "TrainingInterrupted", "register_task", "train"]
