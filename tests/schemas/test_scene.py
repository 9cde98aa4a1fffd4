"""The scene.yaml contract (schemas/scene.py): defaults that run, the committed JSON schema, safe names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.layout import STAGES
from schemas.scene import (
    CameraConfig,
    ClusterConfig,
    IngestConfig,
    InputConfig,
    Scene,
    scene_json_schema,
)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_SCHEMA = ROOT / "schemas" / "scene.schema.json"


def test_only_input_frames_is_required_and_defaults_run() -> None:
    scene = Scene.model_validate({"input": {"frames": "a.jpg"}})
    assert scene.input.frames == "a.jpg"
    assert scene.name is None
    assert scene.output == "runs"
    assert scene.seed == 0
    assert (scene.camera.focal, scene.camera.cx, scene.camera.cy) == ("auto", "auto", "auto")
    assert scene.cluster.kind == "local"
    assert scene.cluster.address is None
    assert scene.cluster.n_workers == "auto"
    assert scene.cluster.threads_per_worker == 1
    assert scene.cluster.memory_limit == "auto"
    assert scene.ingest.chunk == 1024
    assert scene.ingest.min_side == 1024
    assert scene.ingest.compressor == "lz4"
    assert scene.ingest.exif_orientation == "honour"
    for stage in STAGES[1:]:
        assert getattr(scene, stage).enabled is True, stage


def test_every_stage_has_a_section() -> None:
    assert set(STAGES) <= set(Scene.model_fields)


def test_input_is_required() -> None:
    with pytest.raises(ValidationError) as info:
        Scene.model_validate({})
    assert [e["loc"] for e in info.value.errors()] == [("input",)]
    assert info.value.errors()[0]["type"] == "missing"


def test_frames_may_be_a_list() -> None:
    scene = Scene.model_validate({"input": {"frames": ["a.jpg", "b/*.tif"]}})
    assert scene.input.frames == ["a.jpg", "b/*.tif"]


@pytest.mark.parametrize("frames", [[], "", "   ", ["a.jpg", ""]])
def test_empty_frames_are_rejected(frames: object) -> None:
    with pytest.raises(ValidationError):
        InputConfig.model_validate({"frames": frames})


def test_unknown_keys_are_rejected_at_every_level() -> None:
    with pytest.raises(ValidationError) as info:
        Scene.model_validate({"input": {"frames": "a.jpg"}, "ingest": {"chunck": 512}})
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("ingest", "chunck"), "extra_forbidden")]
    with pytest.raises(ValidationError):
        Scene.model_validate({"input": {"frames": "a.jpg"}, "outptu": "x"})


def test_models_are_frozen() -> None:
    scene = Scene.model_validate({"input": {"frames": "a.jpg"}})
    with pytest.raises(ValidationError):
        scene.seed = 3  # type: ignore[misc]


def test_committed_json_schema_is_current() -> None:
    # A stale schema fails here: regenerate with `python -m schemas.scene`.
    assert COMMITTED_SCHEMA.is_file()
    assert COMMITTED_SCHEMA.read_text(encoding="utf-8") == scene_json_schema()


def test_json_schema_describes_the_contract() -> None:
    schema = json.loads(scene_json_schema())
    assert schema["required"] == ["input"]
    assert schema["additionalProperties"] is False
    ingest = schema["$defs"]["IngestConfig"]["properties"]["chunk"]
    assert (ingest["minimum"], ingest["maximum"], ingest["default"]) == (64, 8192, 1024)


@pytest.mark.parametrize("chunk", [64, 512, 1024, 2048, 8192])
def test_even_chunks_are_accepted(chunk: int) -> None:
    assert IngestConfig(chunk=chunk).chunk == chunk


@pytest.mark.parametrize("chunk", [65, 511, 1023, 1025, 8191])
def test_odd_chunk_is_rejected(chunk: int) -> None:
    with pytest.raises(ValidationError, match="chunk must be even"):
        IngestConfig(chunk=chunk)


@pytest.mark.parametrize("chunk", [32, 62, 8194, 0, -2])
def test_chunk_out_of_range_is_rejected(chunk: int) -> None:
    with pytest.raises(ValidationError):
        IngestConfig(chunk=chunk)


@pytest.mark.parametrize("name", ["demo", "Run-1.v2", "a_b", "0", "x" * 128])
def test_safe_names_are_accepted(name: str) -> None:
    assert Scene.model_validate({"input": {"frames": "a.jpg"}, "name": name}).name == name


@pytest.mark.parametrize(
    "name",
    ["a/b", "..", ".", "../x", "/abs", "a\\b", "", ".hidden", "-flag", "a b", "x" * 129, "é", "demo\n"],
)
def test_unsafe_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError):
        Scene.model_validate({"input": {"frames": "a.jpg"}, "name": name})


@pytest.mark.parametrize("focal", [0, -3, "abc", "Auto"])
def test_bad_focal_is_rejected(focal: object) -> None:
    with pytest.raises(ValidationError):
        CameraConfig.model_validate({"focal": focal})


def test_focal_accepts_auto_and_positive_numbers() -> None:
    assert CameraConfig.model_validate({"focal": 1500}).focal == 1500.0
    assert CameraConfig.model_validate({"focal": "auto"}).focal == "auto"


def test_address_kind_needs_an_address() -> None:
    with pytest.raises(ValidationError, match=r"needs cluster\.address"):
        ClusterConfig(kind="address")
    assert ClusterConfig(kind="address", address="tcp://h:8786").address == "tcp://h:8786"
    with pytest.raises(ValidationError, match="only used with kind 'address'"):
        ClusterConfig(kind="local", address="tcp://h:8786")


def test_a_bare_yaml_off_turns_pruning_off() -> None:
    import yaml

    scene = Scene.model_validate(yaml.safe_load("input: {frames: a.jpg}\ndetect: {prune: off}\n"))
    assert scene.detect.prune == "off"
    assert Scene.model_validate({"input": {"frames": "a.jpg"}}).detect.prune == "ground"
    with pytest.raises(ValidationError, match="prune"):
        Scene.model_validate({"input": {"frames": "a.jpg"}, "detect": {"prune": True}})
