"""The crowd methods by the name `crowd.method` gives them in scene.yaml (schemas/scene.py CrowdConfig)."""

from __future__ import annotations

from schemas.scene import CrowdConfig
from tasks import InputError
from tasks.crowd.crowdrec import Crowdrec
from tasks.crowd.global_ import Global
from tasks.crowd.method import CrowdMethod

CROWD_METHODS: dict[str, type[CrowdMethod]] = {"crowdrec": Crowdrec, "global": Global}


def crowd_method(cfg: CrowdConfig) -> CrowdMethod:
    """The method cfg.method names, built from the crowd settings."""
    if cfg.method not in CROWD_METHODS:
        raise InputError(f"unknown crowd method {cfg.method!r}; available: {', '.join(CROWD_METHODS)}")
    return CROWD_METHODS[cfg.method](cfg)
