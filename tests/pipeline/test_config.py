"""pipeline/config.py: scene.yaml -> Scene, one-line errors, frame resolution, config hashes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import (
    ConfigError,
    config_hash,
    frame_name,
    load_scene,
    parse_scene,
    resolve,
    resolve_frames,
)
from schemas.layout import SYNTHETIC_DIR, TRUTH_FILE
from schemas.scene import NAME_PATTERN, ClusterConfig, IngestConfig, Scene

WHERE = "scene.yaml"
FRAMES = {"frames": "a.jpg"}


def error_of(data: Any, where: str = WHERE) -> str:
    with pytest.raises(ConfigError) as info:
        parse_scene(data, where)
    return str(info.value)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def write_scene(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- parse_scene: one line per problem, naming the key path --------------------------------------------


def test_valid_document_parses() -> None:
    scene = parse_scene({"input": FRAMES, "ingest": {"chunk": 512}, "camera": {"focal": 1200}}, WHERE)
    assert isinstance(scene, Scene)
    assert scene.ingest.chunk == 512
    assert scene.camera.focal == 1200.0


def test_misspelt_top_level_key() -> None:
    msg = error_of({"input": FRAMES, "outptu": "x"})
    assert "\n" not in msg
    assert msg.startswith(f"{WHERE}: outptu: unknown key")
    assert "did you mean 'output'?" in msg
    assert "allowed keys here: name, input, output," in msg


def test_misspelt_nested_key() -> None:
    msg = error_of({"input": FRAMES, "ingest": {"chunck": 512}})
    assert "\n" not in msg
    assert msg.startswith(f"{WHERE}: ingest.chunck: unknown key")
    assert "did you mean 'chunk'?" in msg
    # The allowed keys are those of the ingest section, not of the top level.
    allowed = msg.split("allowed keys here: ")[1].split(", ")
    assert allowed == list(IngestConfig.model_fields)


def test_misspelt_key_two_levels_down() -> None:
    msg = error_of({"input": FRAMES, "cluster": {"slurm": {"coers": 4}}})
    assert "\n" not in msg
    assert msg.startswith(f"{WHERE}: cluster.slurm.coers: unknown key")
    assert "did you mean 'cores'?" in msg


def test_unknown_key_without_a_close_match_has_no_guess() -> None:
    msg = error_of({"input": FRAMES, "zzzzzz": 1})
    assert msg.startswith(f"{WHERE}: zzzzzz: unknown key;")
    assert "did you mean" not in msg


def test_two_problems_give_two_lines() -> None:
    msg = error_of({"input": FRAMES, "seed": "x", "ingest": {"chunck": 512}})
    lines = msg.splitlines()
    assert len(lines) == 2
    assert any(line.startswith(f"{WHERE}: seed: 'x' is invalid") for line in lines)
    assert any(line.startswith(f"{WHERE}: ingest.chunck: unknown key") for line in lines)


def test_bad_literal_names_the_allowed_values() -> None:
    msg = error_of({"input": FRAMES, "cluster": {"kind": "slrum"}})
    assert msg == (
        f"{WHERE}: cluster.kind: 'slrum' is not allowed; expected 'local', 'address', 'slurm' or 'kubernetes'"
    )


@pytest.mark.parametrize(
    ("focal", "shown", "reason"),
    [("abc", "'abc'", "valid number"), (-3, "-3", "greater than 0"), (0, "0", "greater than 0")],
)
def test_bad_union_value_is_one_line(focal: object, shown: str, reason: str) -> None:
    msg = error_of({"input": FRAMES, "camera": {"focal": focal}})
    assert "\n" not in msg
    # The path is the user's key path, without pydantic's union-branch tags.
    assert msg.startswith(f"{WHERE}: camera.focal: {shown} is invalid: ")
    assert "'auto'" in msg
    assert reason in msg
    assert "literal" not in msg
    assert "float" not in msg.split(": ")[1]


def test_missing_input() -> None:
    assert error_of({}) == f"{WHERE}: input: required key is missing"
    msg = error_of({"input": {}})
    assert msg.startswith(f"{WHERE}: input: ") and "exactly one of input.frames" in msg and "\n" not in msg


def test_frames_and_synthetic_exclude_each_other() -> None:
    msg = error_of({"input": {"frames": "a.jpg", "synthetic": {"people": 50}}})
    assert "exactly one of input.frames (image files) or input.synthetic" in msg


@pytest.mark.parametrize(
    ("synthetic", "where", "what"),
    [
        ({"people": 5}, "input.synthetic.people", "greater than or equal to 10"),
        ({"width": 40000, "height": 40000}, "input.synthetic", "above 1.1 gigapixel"),
        ({"format": "png"}, "input.synthetic.format", "'jpeg' or 'tiff'"),
        ({"peple": 50}, "input.synthetic.peple", "did you mean 'people'?"),
    ],
)
def test_synthetic_input_errors(synthetic: dict[str, Any], where: str, what: str) -> None:
    msg = error_of({"input": {"synthetic": synthetic}})
    assert msg.startswith(f"{WHERE}: {where}: ") and what in msg, msg


def test_synthetic_frames_are_cached_by_the_settings_that_change_pixels(tmp_path: Path) -> None:
    scene = parse_scene({"input": {"synthetic": {"people": 50, "seed": 4, "frames": 3}}, "output": "o"})
    rs = resolve(scene, write_scene(tmp_path / "s.yaml", ""))
    assert [f.name for f in rs.frames] == ["synth-seed4_000000", "synth-seed5_000000", "synth-seed6_000000"]
    assert [f.synth.seed for f in rs.frames] == [4, 5, 6]  # type: ignore[union-attr]
    root = tmp_path / "o" / SYNTHETIC_DIR
    assert all(f.path.parent.parent.parent == root for f in rs.frames)
    assert rs.frames[0].truth == rs.frames[0].path.parent / TRUTH_FILE
    more = parse_scene({"input": {"synthetic": {"people": 50, "seed": 5, "frames": 1}}, "output": "o"})
    # Another seed and frame count share the cache; another people count does not.
    assert resolve(more, tmp_path / "s.yaml").frames[0].path == rs.frames[1].path
    other = parse_scene({"input": {"synthetic": {"people": 51, "seed": 4}}, "output": "o"})
    assert resolve(other, tmp_path / "s.yaml").frames[0].path.parent.parent != rs.frames[0].path.parent.parent


def test_model_validator_error_names_the_section() -> None:
    msg = error_of({"input": FRAMES, "cluster": {"kind": "address"}})
    assert msg.startswith(f"{WHERE}: cluster: ")
    assert "needs cluster.address" in msg
    assert "Value error" not in msg


def test_odd_chunk_message() -> None:
    msg = error_of({"input": FRAMES, "ingest": {"chunk": 1025}})
    assert msg.startswith(f"{WHERE}: ingest: ")
    assert "chunk must be even" in msg
    assert "1025" in msg


@pytest.mark.parametrize("data", [[1, 2], "input: x", None, 3])
def test_non_mapping_document(data: Any) -> None:
    msg = error_of(data)
    assert msg.startswith(f"{WHERE}: expected a mapping of keys")
    assert msg.endswith(f"got {data!r}")


def test_long_values_are_shortened() -> None:
    msg = error_of({"input": FRAMES, "seed": "y" * 500})
    assert "\n" not in msg
    assert len(msg) < 200
    assert "..." in msg


# --- load_scene: file problems ------------------------------------------------------------------------


def test_load_scene_reads_a_file(tmp_path: Path) -> None:
    path = write_scene(tmp_path / "s.yaml", "input:\n  frames: a.jpg\nseed: 7\n")
    scene = load_scene(path)
    assert scene.seed == 7
    assert scene.input.frames == "a.jpg"


def test_load_scene_errors_name_the_file(tmp_path: Path) -> None:
    path = write_scene(tmp_path / "s.yaml", "input:\n  frames: a.jpg\ningest:\n  chunck: 512\n")
    with pytest.raises(ConfigError) as info:
        load_scene(path)
    assert str(info.value).startswith(f"{path}: ingest.chunck: unknown key (did you mean 'chunk'?)")


@pytest.mark.parametrize(
    ("text", "line_col"),
    [
        ("input:\n  frames: [a, b\nseed: 1\n", "3:5"),
        ("input:\n\tframes: a\n", "2:1"),
        ("a: b: c\n", "1:5"),
    ],
)
def test_invalid_yaml_gives_file_line_column(tmp_path: Path, text: str, line_col: str) -> None:
    path = write_scene(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_scene(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line_col}: invalid YAML: ")


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    path = write_scene(tmp_path / "evil.yaml", "input: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_scene(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_non_mapping_file(tmp_path: Path, text: str) -> None:
    path = write_scene(tmp_path / "list.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_scene(path)
    assert str(info.value).startswith(f"{path}: expected a mapping of keys")


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match="not a text file"):
        load_scene(path)


def test_scene_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_scene(tmp_path / "nope.yaml")
    assert str(info.value) == f"scene file not found: {tmp_path / 'nope.yaml'}"
    with pytest.raises(ConfigError, match="scene file not found"):
        load_scene(tmp_path)  # a directory is not a scene file


# --- resolve: paths relative to the scene file --------------------------------------------------------


def test_relative_paths_resolve_against_the_scene_file_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene_dir = tmp_path / "project"
    real = touch(scene_dir / "images" / "a.jpg")
    elsewhere = tmp_path / "elsewhere"
    touch(elsewhere / "images" / "a.jpg")  # a decoy: resolving against cwd would find this one
    path = write_scene(scene_dir / "my-scene.yaml", "input:\n  frames: images/a.jpg\noutput: out\n")
    monkeypatch.chdir(elsewhere)
    rs = resolve(load_scene(path), path)
    assert rs.name == "my-scene"
    assert rs.source == path
    assert rs.output == (scene_dir / "out").resolve()
    assert [(f.name, f.path) for f in rs.frames] == [("a", real)]


def test_model_files_resolve_against_the_scene_file_and_builtins_stay(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    text = (
        "input:\n  frames: a.jpg\n"
        "detect: {model: models/det.onnx}\n"
        "pose2d: {backend: mmpose, model: cfg/rtm.py::ckpt/rtm.pth}\n"
        "regress: {model: /abs/embedded.pt, body: builtin:neutral}\n"
    )
    path = write_scene(tmp_path / "s.yaml", text)
    scene = resolve(load_scene(path), path).scene
    assert scene.detect.model == str(tmp_path / "models" / "det.onnx")
    assert scene.pose2d.model == f"{tmp_path / 'cfg' / 'rtm.py'}::{tmp_path / 'ckpt' / 'rtm.pth'}"
    assert scene.regress.model == "/abs/embedded.pt" and scene.regress.body == "builtin:neutral"
    default = resolve(load_scene(write_scene(tmp_path / "d.yaml", "input:\n  frames: a.jpg\n")), path)
    assert default.scene.detect.model == "builtin:yolox-nano-dynamic" and default.scene.pose2d.model is None


def test_relative_scene_path_gives_absolute_frame_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Frame paths travel to workers whose working directory may differ: they must not depend on cwd.
    real = touch(tmp_path / "project" / "images" / "a.jpg")
    write_scene(tmp_path / "project" / "s.yaml", "input:\n  frames: images/a.jpg\n")
    monkeypatch.chdir(tmp_path)
    rel = Path("project/s.yaml")
    rs = resolve(load_scene(rel), rel)
    assert rs.frames[0].path.is_absolute()
    assert rs.frames[0].path.resolve() == real.resolve()
    assert rs.output == (tmp_path / "project" / "runs").resolve()


def test_output_override_and_name(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    path = write_scene(tmp_path / "s.yaml", "name: fixed\ninput:\n  frames: a.jpg\noutput: ignored\n")
    rs = resolve(load_scene(path), path, output=tmp_path / "over")
    assert rs.name == "fixed"
    assert rs.output == (tmp_path / "over").resolve()


def test_unsafe_file_stem_needs_a_name(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    path = write_scene(tmp_path / "my scene.yaml", "input:\n  frames: a.jpg\n")
    with pytest.raises(ConfigError, match="not a safe directory name; set name:"):
        resolve(load_scene(path), path)


def test_absolute_frame_path(tmp_path: Path) -> None:
    img = touch(tmp_path / "imgs" / "b.png")
    frames = resolve_frames(str(img), tmp_path / "unrelated")
    assert [(f.name, f.path) for f in frames] == [("b", img)]


def test_list_order_is_kept(tmp_path: Path) -> None:
    for n in ("c", "a", "b"):
        touch(tmp_path / f"{n}.jpg")
    frames = resolve_frames(["c.jpg", "a.jpg", "b.jpg"], tmp_path)
    assert [f.name for f in frames] == ["c", "a", "b"]


def test_glob_matches_are_sorted_files(tmp_path: Path) -> None:
    for n in ("c", "a", "b"):
        touch(tmp_path / "imgs" / f"{n}.jpg")
    touch(tmp_path / "imgs" / "z.png")
    (tmp_path / "imgs" / "dir.jpg").mkdir()  # a directory matching the pattern is not a frame
    frames = resolve_frames("imgs/*.jpg", tmp_path)
    assert [f.name for f in frames] == ["a", "b", "c"]
    assert [f.path for f in frames] == [tmp_path / "imgs" / f"{n}.jpg" for n in "abc"]


def test_recursive_glob(tmp_path: Path) -> None:
    touch(tmp_path / "d" / "one.jpg")
    touch(tmp_path / "d" / "sub" / "two.jpg")
    frames = resolve_frames("d/**/*.jpg", tmp_path)
    assert sorted(f.name for f in frames) == ["one", "two"]


def test_glob_matching_nothing(tmp_path: Path) -> None:
    touch(tmp_path / "imgs" / "a.png")
    with pytest.raises(ConfigError) as info:
        resolve_frames(["imgs/*.jpg"], tmp_path)
    msg = str(info.value)
    assert msg.startswith("input.frames: pattern 'imgs/*.jpg' matches no file")
    assert str(tmp_path / "imgs") in msg


def test_glob_in_a_directory_whose_name_has_glob_characters(tmp_path: Path) -> None:
    # The scene's own directory is a place, not a pattern.
    base = tmp_path / "shots [2024]"
    touch(base / "a.jpg")
    touch(base / "b.jpg")
    frames = resolve_frames("*.jpg", base)
    assert [f.path for f in frames] == [base / "a.jpg", base / "b.jpg"]


def test_file_whose_name_has_glob_characters(tmp_path: Path) -> None:
    img = touch(tmp_path / "img[1].jpg")
    touch(tmp_path / "img1.jpg")  # what the name would match as a pattern
    frames = resolve_frames("img[1].jpg", tmp_path)
    assert [f.path for f in frames] == [img]


def test_listed_missing_file(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    with pytest.raises(ConfigError) as info:
        resolve_frames(["a.jpg", "missing.jpg"], tmp_path)
    assert str(info.value) == (
        f"input.frames: 'missing.jpg' is not a file (looked for {tmp_path / 'missing.jpg'})"
    )


def test_listed_directory_is_not_a_frame(tmp_path: Path) -> None:
    (tmp_path / "d.jpg").mkdir()
    with pytest.raises(ConfigError, match="is not a file"):
        resolve_frames("d.jpg", tmp_path)


def test_same_stem_in_two_directories(tmp_path: Path) -> None:
    touch(tmp_path / "day1" / "crowd.jpg")
    touch(tmp_path / "day2" / "crowd.png")
    with pytest.raises(ConfigError) as info:
        resolve_frames(["day1/crowd.jpg", "day2/crowd.png"], tmp_path)
    msg = str(info.value)
    assert "would share the frame directory 'crowd'" in msg
    assert "day1" in msg
    assert "day2" in msg


def test_names_that_sanitise_alike_collide(tmp_path: Path) -> None:
    touch(tmp_path / "a b.jpg")
    touch(tmp_path / "a_b.jpg")
    with pytest.raises(ConfigError, match="would share the frame directory 'a_b'"):
        resolve_frames("*.jpg", tmp_path)


def test_same_file_twice_is_one_frame(tmp_path: Path) -> None:
    img = touch(tmp_path / "a.jpg")
    touch(tmp_path / "b.jpg")
    frames = resolve_frames(["a.jpg", "*.jpg", str(img)], tmp_path)
    assert [(f.name, f.path) for f in frames] == [("a", img), ("b", tmp_path / "b.jpg")]


# --- frame_name ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("crowd.jpg", "crowd"),
        ("my photo (1).jpg", "my_photo__1_"),
        ("a.b.tif", "a.b"),
        (".hidden.jpg", "hidden"),
        ("__x.png", "x"),
        ("-x.png", "x"),
        ("été.jpg", "t_"),
        ("..jpg", "frame"),
        ("@@@.jpg", "frame"),
        ("x" * 300 + ".jpg", "x" * 128),
    ],
)
def test_frame_name_sanitises(filename: str, expected: str) -> None:
    assert frame_name(Path("/some/dir") / filename) == expected


@given(st.text(min_size=1, max_size=200).filter(lambda s: "/" not in s and "\x00" not in s))
def test_frame_name_is_always_a_safe_directory_name(stem: str) -> None:
    name = frame_name(Path("/d") / f"{stem}.jpg")
    assert re.fullmatch(NAME_PATTERN, name)
    assert name not in {".", ".."}


# --- config_hash --------------------------------------------------------------------------------------


def test_config_hash_is_stable() -> None:
    h = config_hash(IngestConfig())
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert config_hash(IngestConfig()) == h
    assert config_hash(IngestConfig(chunk=1024, compressor="lz4")) == h  # defaults spelt out: same
    assert config_hash(IngestConfig.model_validate({"max_megapixels": 2000})) == h  # int vs float


@pytest.mark.parametrize(
    "change",
    [
        {"chunk": 512},
        {"min_side": 256},
        {"compressor": "zstd"},
        {"compression_level": 3},
        {"max_megapixels": 100.0},
        {"exif_orientation": "refuse"},
    ],
)
def test_config_hash_changes_with_each_setting(change: dict[str, Any]) -> None:
    assert config_hash(IngestConfig(**change)) != config_hash(IngestConfig())


def test_config_hash_sees_nested_changes() -> None:
    base = ClusterConfig()
    changed = ClusterConfig.model_validate({"slurm": {"cores": 4}})
    assert config_hash(changed) != config_hash(base)


# --- property: parse_scene never raises anything but a one-line-per-problem ConfigError ---------------


def _all_keys() -> list[str]:
    keys: set[str] = set()
    todo: list[Any] = [Scene]
    while todo:
        model = todo.pop()
        for name, field in model.model_fields.items():
            keys.add(name)
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                todo.append(ann)
    return sorted(keys)


KEYS = st.one_of(st.sampled_from(_all_keys()), st.text(max_size=12))
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["auto", "slurm", "local", "address", "lz4", "a.jpg", "1024", "*.jpg", "..", "a/b"]),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=20,
)
DOCUMENTS = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=6),
    st.builds(lambda extra: {"input": FRAMES, **extra}, st.dictionaries(KEYS, VALUES, max_size=4)),
    VALUES,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_parse_scene_returns_a_scene_or_one_line_per_problem(data: Any) -> None:
    where = "where/scene.yaml"
    try:
        scene = parse_scene(data, where)
    except ConfigError as e:
        lines = str(e).split("\n")
        assert lines
        for line in lines:
            assert line.startswith(f"{where}: "), line
        assert all(line.isprintable() for line in lines), lines
    else:
        assert isinstance(scene, Scene)
