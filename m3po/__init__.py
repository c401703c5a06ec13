"""M3PO reproduction suite: the algorithm, the benchmark environments and the command line."""

import os

# MuJoCo picks a GL backend at import; nothing here renders, so default to none (no display needed).
# A user's own MUJOCO_GL (e.g. egl for videos) wins.
os.environ.setdefault("MUJOCO_GL", "disable")

__version__ = "0.1.0"
