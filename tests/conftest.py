"""Shared settings for the cross-package tests: headless rendering and offline logging, as in CI."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYGLET_HEADLESS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
