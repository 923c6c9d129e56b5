"""The settings' annotations are evaluated once per process (by the zygote, through
``keys()``, for every child it forks), not again at each ``load_config``."""

from __future__ import annotations

import pytest

from ecsm_actors.config import keys, load_config, loading


def test_load_config_evaluates_no_annotation_once_the_keys_are_known(
        monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    keys()  # what the zygote does before it forks

    def evaluated(*args: object, **kwargs: object) -> object:
        raise AssertionError("the settings' annotations were evaluated again")

    monkeypatch.setattr(loading, "get_type_hints", evaluated)
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path),
                               "ECSM_ACTORS_CONTROLLER_WORKERS": "3"})
    assert cfg.controller.workers == 3
