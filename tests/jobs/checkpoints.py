"""A spy on the real DataFrame checkpoint methods: where a job's checkpoints go."""

from __future__ import annotations

import os
import sys


def record_checkpoints(spark, monkeypatch) -> tuple[list[tuple[str, int]], list[str]]:
    """``(reliable, local)``, filled as checkpoints are taken: ``(session checkpoint dir,
    files in it just after)`` per reliable one, the calling file's name per local one."""
    frame = type(spark.range(1))  # the classic DataFrame, which implements both methods
    reliable: list[tuple[str, int]] = []
    local: list[str] = []
    take, take_local = frame.checkpoint, frame.localCheckpoint

    def spy(self, *args, **kwargs):
        out = take(self, *args, **kwargs)
        folder = self.sparkSession.sparkContext.getCheckpointDir().removeprefix("file:")
        reliable.append((folder, sum(len(files) for *_, files in os.walk(folder))))
        return out

    def spy_local(self, *args, **kwargs):
        local.append(os.path.basename(sys._getframe(1).f_code.co_filename))
        return take_local(self, *args, **kwargs)

    monkeypatch.setattr(frame, "checkpoint", spy)
    monkeypatch.setattr(frame, "localCheckpoint", spy_local)
    return reliable, local
