"""The scene.yaml contract: typed models with defaults that run.

Parsing, path resolution and error messages live in pipeline/config.py; this module only says what a
valid scene is. `python -m schemas.scene` regenerates `scene.schema.json` next to it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.layout import SYNTHETIC_DIR

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class _Section(BaseModel):
    # Unknown keys are errors: a misspelt key silently ignored would run with a default the user
    # believed they had changed.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticConfig(_Section):
    """Synthetic crowd frames with exact 3D truth (tasks/synth.py), generated on the first run and cached.
    The one description of a synthetic frame: scene.yaml's input.synthetic, `python -m pipeline synth`
    and tasks/synth.py take it; a single frame is drawn from `seed` (frame k of a scene from seed + k)."""

    people: Annotated[int, Field(ge=10, le=5000)] = Field(default=200, description="people in a frame")
    preset: Literal["plaza", "stadium_entrance", "park"] = Field(
        default="plaza",
        description=(
            "what people do and stand on (tasks/scenery.py): plaza, everyone standing or walking on one "
            "floor; stadium_entrance, a raised terrace 0.5-4 m high over part of the far ground, benches, "
            "people sitting, crouching, jumping, cyclists and children; park, a ground sloped up to 3 "
            "degrees, more people seated, more cyclists and children"
        ),
    )
    width: Annotated[int, Field(ge=256, le=65536)] = Field(default=8192, description="image width, pixels")
    height: Annotated[int, Field(ge=256, le=65536)] = Field(default=4096, description="image height, pixels")
    seed: int = Field(default=0, description="frame k is generated from seed + k")
    frames: Annotated[int, Field(ge=1, le=1000)] = 1
    focal_factor: Annotated[float, Field(ge=0.3, le=5.0)] | None = Field(
        default=None, description="focal / image diagonal; default: drawn from 1.1-1.5 (GigaCrowd-like)"
    )
    camera_height: Annotated[float, Field(gt=0, le=200)] | None = Field(
        default=None, description="metres above the ground; default: drawn from 10-20"
    )
    max_slope_deg: Annotated[float, Field(ge=0, le=30)] = Field(
        default=0.0, description="ground slope against gravity, drawn from [0, max]; people stay upright"
    )
    max_roll_deg: Annotated[float, Field(ge=0, le=30)] = Field(
        default=2.0, description="camera roll about its optical axis, drawn from [-max, max]"
    )
    min_gap: Annotated[float, Field(gt=0, le=10)] = Field(
        default=0.6, description="least distance between people's centres on the ground, metres"
    )
    format: Literal["jpeg", "tiff"] = Field(default="jpeg", description="tiff: tiled pyramidal TIFF")
    jpeg_quality: Annotated[int, Field(ge=50, le=100)] = Field(
        default=92, description="also the quality of the tiled TIFF's JPEG-compressed tiles"
    )
    blur_sigma: Annotated[float, Field(ge=0, le=10)] = Field(
        default=0.6, description="Gaussian blur of the rendered pixels (a lens), pixels"
    )
    noise_sigma: Annotated[float, Field(ge=0, le=50)] = Field(
        default=2.0, description="Gaussian noise of the rendered pixels (a sensor), grey levels"
    )
    tile: Annotated[int, Field(ge=512, le=16384, multiple_of=512)] = Field(
        default=2048, description="rows rendered at a time: memory holds one strip, not the frame"
    )
    body: str = Field(default="builtin:neutral", description="body model: builtin:neutral or an SMPL file")
    cache: str | None = Field(
        default=None, description=f"directory for the generated frames; default: <output>/{SYNTHETIC_DIR}"
    )

    @model_validator(mode="after")
    def _size(self) -> SyntheticConfig:
        if self.width * self.height > 1_100_000_000:
            raise ValueError(f"{self.width}x{self.height} is above 1.1 gigapixel")
        return self

    @property
    def image_name(self) -> str:
        """The file name of the frame drawn from `seed`."""
        return f"synth-seed{self.seed}_000000." + {"jpeg": "jpg", "tiff": "tif"}[self.format]

    def frame(self, k: int) -> SyntheticConfig:
        """The settings of the scene's frame k (0-based): seed + k, one frame."""
        return self.model_copy(update={"seed": self.seed + k, "frames": 1})


class InputConfig(_Section):
    """Frames of the scene: image files (a path, a list, glob patterns; relative to the scene file), or
    synthetic frames generated from a seed. Exactly one of the two."""

    frames: str | list[str] | None = Field(
        default=None, description="image path, glob pattern, or a list of them"
    )
    synthetic: SyntheticConfig | None = None

    @field_validator("frames")
    @classmethod
    def _non_empty(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and not v:
            raise ValueError("must list at least one frame")
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not all(s.strip() for s in v)):
            raise ValueError("an empty path is not a frame")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> InputConfig:
        if (self.frames is None) == (self.synthetic is None):
            raise ValueError("give exactly one of input.frames (image files) or input.synthetic")
        return self


class CameraConfig(_Section):
    """Intrinsics in full-resolution pixels. `auto` focal = image diagonal; `estimate` = from the
    people of each frame (tasks/camera.py: where their head-to-ankle lines meet and their heights
    vanish), the diagonal when they do not determine it; `auto` centre = image centre."""

    focal: Literal["auto", "estimate"] | Annotated[float, Field(gt=0)] = "auto"
    cx: Literal["auto"] | float = "auto"
    cy: Literal["auto"] | float = "auto"


class SlurmConfig(_Section):
    """dask-jobqueue SLURMCluster arguments (one job = `processes` workers sharing `cores`)."""

    queue: str | None = None
    account: str | None = None
    cores: Annotated[int, Field(ge=1)] = 8
    processes: Annotated[int, Field(ge=1)] = 1
    memory: str = "32GB"
    walltime: str = "04:00:00"
    gpus_per_job: Annotated[int, Field(ge=0)] = 0
    jobs: Annotated[int, Field(ge=1)] = 1
    local_directory: str | None = None
    job_extra_directives: list[str] = []
    job_script_prologue: list[str] = []


class KubernetesConfig(_Section):
    """dask-kubernetes operator KubeCluster arguments."""

    name: str = "gigacrowd"
    image: str = "ghcr.io/dask/dask:latest"
    n_workers: Annotated[int, Field(ge=1)] = 2
    namespace: str | None = None


class ClusterConfig(_Section):
    """Where the Dask graph runs."""

    kind: Literal["local", "address", "slurm", "kubernetes"] = "local"
    address: str | None = Field(default=None, description="scheduler address, for kind: address")
    n_workers: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    threads_per_worker: Annotated[int, Field(ge=1)] = 1
    memory_limit: str = Field(default="auto", description="per local worker, e.g. '4GB'; auto = share")
    dashboard_address: str = ":0"
    gpus: Literal["auto", "none"] = Field(
        default="auto",
        description="local: auto = with dask-cuda installed (the gpu extra) and GPUs visible, a "
        "LocalCUDACluster of one worker per GPU, each advertising the resource GPU=1; none = CPU workers",
    )
    slurm: SlurmConfig = SlurmConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()

    @model_validator(mode="after")
    def _address_given(self) -> ClusterConfig:
        if self.kind == "address" and not self.address:
            raise ValueError("kind 'address' needs cluster.address (e.g. tcp://host:8786)")
        if self.kind != "address" and self.address:
            raise ValueError(f"cluster.address is only used with kind 'address', not '{self.kind}'")
        return self


class IngestConfig(_Section):
    """Image -> Zarr v3 pyramid."""

    chunk: Annotated[int, Field(ge=64, le=8192)] = Field(
        default=1024, description="chunk side in pixels (chunks are chunk x chunk x 3)"
    )
    min_side: Annotated[int, Field(ge=16)] = Field(
        default=1024, description="add levels until the shorter side is below this"
    )
    compressor: Literal["lz4", "zstd", "none"] = "lz4"
    compression_level: Annotated[int, Field(ge=0, le=9)] = 1
    max_megapixels: Annotated[float, Field(gt=0)] = Field(
        default=2000.0, description="refuse images whose header claims more (protects the cluster)"
    )
    exif_orientation: Literal["honour", "refuse"] = Field(
        default="honour",
        description="rotated EXIF images: honour (slower: random access) or refuse with an error",
    )

    @model_validator(mode="after")
    def _even_chunk(self) -> IngestConfig:
        if self.chunk % 2:
            raise ValueError(f"chunk must be even so level k+1 chunks align with level k, got {self.chunk}")
        return self


class DetectConfig(_Section):
    """Person detection over a multi-scale tile plan of the pyramid (tasks/detect.py)."""

    enabled: bool = True
    backend: Literal["yolox-onnx", "yolox", "file"] = "yolox-onnx"
    model: str = Field(
        default="builtin:yolox-nano-dynamic",
        description="yolox-onnx: builtin:yolox-nano-dynamic (any input size), builtin:yolox-nano (416 only) "
        "or a YOLOX .onnx; yolox: an official/ByteTrack .pth",
    )
    input_size: Annotated[int, Field(ge=64, le=4096, multiple_of=32)] = Field(
        default=640,
        description="network input side for models with a free size (yolox, yolox-nano-dynamic); "
        "larger tiles spend less on their overlap",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="backend yolox: auto = cuda if available"
    )
    file: str | None = Field(
        default=None, description="backend file: boxes computed elsewhere (relative paths: to the scene file)"
    )
    file_format: Literal["coco-results", "largecrowd", "panda"] = "coco-results"
    file_images: str | None = Field(
        default=None,
        description="coco-results with numeric image_id: the COCO dataset json listing the images",
    )
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.23
    nms_iou: Annotated[float, Field(gt=0, le=1)] = 0.65
    part_height: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None,
        description="e.g. 0.7: a box shorter than this share of the ground plane's height line at its "
        "feet and half inside a 1.3x taller box is dropped as a body part (tasks/detect.drop_short_parts; "
        "it also drops people whose legs are hidden, and seated ones); null (default) keeps them",
    )
    person_px: Annotated[float, Field(ge=16)] = Field(
        default=160.0,
        description="tallest person (detector input pixels) a pyramid level is responsible for; "
        "level k sees full-res heights [person_px 2^(k-1), person_px 2^k)",
    )
    margin: Annotated[float, Field(ge=1, le=2)] = Field(
        default=1.25, description="tiles overlap by margin * person_px; level bands widen by it in the merge"
    )
    max_person: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="tallest person to expect, full-res pixels (default: frame height)"
    )
    min_person: Annotated[float, Field(ge=4)] | None = Field(
        default=None,
        description="smallest person to expect, full-res pixels; below 32 px the frame is also tiled "
        "enlarged 2x (4x below 16 px), so that they reach the detector at >= 32 px (default: none)",
    )
    tiles_per_task: Annotated[int, Field(ge=1, le=4096)] = 64
    prune: Literal["ground", "off"] = Field(
        default="ground",
        description="ground: run levels >= 2 first, fit people's height against where they stand "
        "(one ground plane) and skip finer tiles where nobody of their band can stand; off: every tile",
    )
    prune_tolerance: Annotated[float, Field(ge=1.2, le=8)] = Field(
        default=2.0, description="least factor by which a height may differ from the ground-plane prediction"
    )
    prune_min_people: Annotated[int, Field(ge=3)] = Field(
        default=10, description="fewer people whole in the coarse levels: no pruning"
    )

    @field_validator("prune", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        return "off" if v is False else v  # YAML 1.1 reads a bare `off` as false

    @model_validator(mode="after")
    def _file_given(self) -> DetectConfig:
        if (self.backend == "file") != (self.file is not None):
            raise ValueError("backend 'file' needs detect.file, and detect.file needs backend 'file'")
        return self


class Pose2dConfig(_Section):
    """Top-down COCO-17 pose on crops around each detection (tasks/pose2d.py)."""

    enabled: bool = True
    backend: Literal["movenet", "blazepose", "onnx", "mmpose", "file"] = Field(
        default="movenet", description="file: the keypoints of detect.file (detect.backend file)"
    )
    model: str | None = Field(
        default=None,
        description="movenet/blazepose: a .tflite of that kind, default the shipped one "
        "(builtin:movenet-lightning, builtin:blazepose-full); onnx: an mmpose heatmap or RTMPose "
        "SimCC export (required); mmpose: 'CONFIG.py::CHECKPOINT.pth' (needs mmpose installed)",
    )
    crop_scale: Annotated[float, Field(ge=1, le=3)] = Field(
        default=1.25, description="square crop side = crop_scale * the box's longer side"
    )
    boxes_per_task: Annotated[int, Field(ge=1, le=100000)] = 256
    mask_others: bool = Field(
        default=True,
        description="paint the other detections' boxes (outside the person's own box) out of each crop "
        "before the pose network: neighbours' limbs pull a single-person network onto them",
    )
    overlay: bool = Field(
        default=True, description="draw boxes and keypoints on a frame thumbnail (overlay.png)"
    )


class RegressConfig(_Section):
    """SMPL pose, shape and camera per person from its box and keypoints (tasks/regress.py)."""

    enabled: bool = True
    backend: Literal["embedded", "cliff"] = Field(
        default="embedded",
        description="embedded: the project's own regressor (trained on synthetic people of the shipped "
        "body model); cliff: an official CLIFF checkpoint (ResNet-50 or HRNet-W48)",
    )
    model: str | None = Field(
        default=None,
        description="embedded: builtin:embedded-kp (keypoints + box, the default), builtin:embedded-img "
        "(the crop too), or weights written by `python -m pipeline train regressor`; cliff: the "
        "checkpoint path (required)",
    )
    body: str = Field(
        default="builtin:neutral",
        description="body model for joints3d: builtin:neutral or a SMPL .pkl; the embedded regressor's "
        "betas belong to builtin:neutral",
    )
    device: str = Field(default="auto", description="torch device of the regressor: auto, cpu, cuda, cuda:N")
    boxes_per_task: Annotated[int, Field(ge=1, le=100000)] = 1024
    meshes: bool = Field(default=True, description="draw the meshes over a frame thumbnail (meshes.png)")

    @model_validator(mode="after")
    def _cliff_needs_model(self) -> RegressConfig:
        if self.backend == "cliff" and (self.model is None or self.model.startswith("builtin:")):
            raise ValueError("regress.backend 'cliff' needs regress.model: the path of a CLIFF checkpoint")
        return self


class LossWeights(_Section):
    """The terms and the optimiser every crowd method shares (tasks/crowd/method.data_terms)."""

    w_crowd: Annotated[float, Field(ge=0)] = 0.001
    w_keypoints: Annotated[float, Field(ge=0)] = 5.0
    w_pose: Annotated[float, Field(ge=0)] = 5.0
    w_shape: Annotated[float, Field(ge=0)] = 0.001
    scale: Annotated[float, Field(gt=0)] = Field(default=60.0, description="every term times this")
    lr: Annotated[float, Field(gt=0)] = 1e-5
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    min_lr: Annotated[float, Field(ge=0)] = 1e-7
    batch: Annotated[int, Field(ge=2, le=10000)] = 50


class CrowdrecConfig(LossWeights):
    """The published procedure as its public code runs it (boycehbz/CrowdRec; reference/method.md
    section 4; tasks/crowd/crowdrec.py)."""

    min_last: Annotated[int, Field(ge=1)] = Field(
        default=8,
        description="a last batch under this many people starts `overlap` people earlier (public code)",
    )
    overlap: Annotated[int, Field(ge=0)] = Field(
        default=10,
        description="people of the batch before that a small last batch runs again; theirs are then the "
        "last batch's results (public code: 107 people -> 0-49, 50-99, 90-106)",
    )
    first_iterations: Annotated[int, Field(ge=1)] = Field(
        default=100,
        description="iterations planned for a frame's first batch: 100 in the public code's demo; the "
        "paper reports 260 for its challenge entry, with no first/later split",
    )
    later_iterations: Annotated[int, Field(ge=1)] = Field(
        default=50, description="iterations planned for each later batch: 50 in the public code's demo"
    )
    first_period: Annotated[int, Field(ge=1)] = Field(
        default=20, description="first warm-restart period of a frame's first batch (each next one doubles)"
    )
    later_period: Annotated[int, Field(ge=1)] = Field(
        default=140, description="first warm-restart period of each later batch's new scheduler"
    )
    stop_k: Annotated[int, Field(ge=1)] = Field(
        default=5,
        description="from the (planned + 2)th iteration on, stop at the first whose loss is below the "
        "k-th smallest so far, its own included (public code: 5, i.e. one of the 4 lowest)",
    )
    max_extra: Annotated[int, Field(ge=0)] = Field(
        default=1000,
        description="ours, not the public code's (it has no cap): at most this many iterations past the "
        "first at which the stop rule may stop",
    )


class GlobalConfig(LossWeights):
    """The frame's floors and who stands on them (tasks/crowd/global_.py, tasks/support.py): each step
    optimises a batch drawn from the whole frame, pulling the feet of the people on a level to it, a
    final pass predicts everyone with the final weights and the snap stands them on it. Its keypoint
    term weighs more, and its pose prior less, than crowdrec's:
    with the ground held by the whole crowd, the network may follow each person's keypoints further
    (how the values were chosen: benchmarks/history.md)."""

    w_crowd: Annotated[float, Field(ge=0)] = 0.01
    w_keypoints: Annotated[float, Field(ge=0)] = 16.0
    w_pose: Annotated[float, Field(ge=0)] = 1.0
    lr: Annotated[float, Field(gt=0)] = 5e-4
    warmup: Annotated[int, Field(ge=0)] = Field(
        default=10,
        description="steps of linear learning-rate warm-up before the cosine annealing (at most half "
        "the steps): Adam's first updates move every weight by about lr whatever its gradient",
    )
    steps: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        default="auto",
        description="optimisation steps; auto: as many as keep the network evaluations within a third "
        "of what crowdrec as first shipped (batches of 50, 260 first / 100 later iterations) planned "
        "for the same frame",
    )
    refresh: Annotated[int, Field(ge=1)] = Field(default=50, description="steps between plane refits")
    huber_m: Annotated[float, Field(gt=0)] = Field(default=0.05, description="robust spread scale, m")
    max_angle_deg: Annotated[float, Field(gt=0, le=90)] = Field(
        default=30.0, description="people leaning further from the crowd's up do not orient the plane"
    )
    small_group: Annotated[int, Field(ge=0)] = Field(
        default=20,
        description="below this many people who may stand, the floors are searched along the up turned "
        "by up to max_tilt_deg too (the direction most of them agree on a floor with), and held there",
    )
    max_tilt_deg: Annotated[float, Field(ge=0, le=30)] = Field(
        default=8.0, description="how far the small-group search turns the fitted up (pitch and roll)"
    )
    max_turn_deg: Annotated[float, Field(gt=0, le=90)] = Field(
        default=10.0,
        description="the most a refit may turn the floors' up from the one the levels were judged with: "
        "a larger turn is the fit swinging on few people or on the bodies' lean, not the floor (the "
        "levels' heights are held, so a swung up would take everyone off them)",
    )
    normal: Literal["auto", "people", "camera"] = Field(
        default="auto",
        description="where the ground plane's direction comes from. people: a plane fitted to the "
        "network's feet; camera: the image, through the head-over-feet geometry of the people's "
        "keypoints at the frame's focal (tasks/camera.py), the people's plane where they do not "
        "determine it; auto: camera when the focal is given or estimated, people when it is the "
        "diagonal guess (a plane from the image is only as right as the focal). camera takes the "
        "people's vertical for the ground's normal, as CrowdRec's eq. 7 does: level ground; on a "
        "slope use people",
    )
    height: Literal["first", "refit"] = Field(
        default="first",
        description="the ground's offset, the camera's height above it, which sets the crowd's scale. "
        "first: from the network's first prediction, held through the finetune (its depths are "
        "unbiased for the frame's focal, and a crowd scaled about the camera reprojects the same, so "
        "the finetune cannot observe the scale); refit: refitted with the plane to the finetuned feet",
    )
    snap: bool = Field(
        default=True,
        description="finally stand each person on a level on it: the feet where their image ray meets "
        "the level (the depth the ground gives), the body scaled about the camera towards that depth "
        "as far as stature_prior allows (the scale is stored, GigaCrowd's scale_smpl), so the image "
        "is unchanged unless the stature would leave the prior",
    )
    stature_prior: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = Field(
        default=(1.5, 1.95),
        description="metres: the statures (rest-pose height x scale) the crowd step may give a person "
        "(tasks/support.py): the floors are judged with it and the snap held within it. Adults: the "
        "shipped body's shape space does not reach children",
    )

    @model_validator(mode="after")
    def _prior_ordered(self) -> GlobalConfig:
        lo, hi = self.stature_prior
        if lo >= hi:
            raise ValueError(f"stature_prior: the lower bound {lo} must be below the upper {hi}")
        return self


class CrowdConfig(_Section):
    """The reduce step: finetune the regressor's weights on each frame (tasks/crowd/); each method has
    its settings section (crowdrec, global)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = True
    method: Literal["crowdrec", "global"] = Field(
        default="global",
        description="crowdrec: the published per-batch procedure; global: the frame's floors and who "
        "stands on them, batches drawn across the frame, a final pass with the final weights",
    )
    crowdrec: CrowdrecConfig = CrowdrecConfig()
    global_: GlobalConfig = Field(default=GlobalConfig(), alias="global")
    device: str = Field(default="auto", description="torch device: auto, cpu, cuda, cuda:N")


class WriteConfig(_Section):
    """The product: each frame's rows of `<output>/<scene>/persons/` (schemas/persons.py)."""

    enabled: bool = True


class Scene(_Section):
    """A scene: frames in, one run directory `<output>/<name>/<frame>/` per frame out."""

    name: str | None = Field(default=None, description="scene name; default: the scene file's stem")
    input: InputConfig
    output: str = Field(default="runs", description="output directory (relative to the scene file)")
    seed: int = 0
    camera: CameraConfig = CameraConfig()
    cluster: ClusterConfig = ClusterConfig()
    ingest: IngestConfig = IngestConfig()
    detect: DetectConfig = DetectConfig()
    pose2d: Pose2dConfig = Pose2dConfig()
    regress: RegressConfig = RegressConfig()
    crowd: CrowdConfig = CrowdConfig()
    write: WriteConfig = WriteConfig()

    @model_validator(mode="after")
    def _pose_file_needs_detect_file(self) -> Scene:
        if self.pose2d.backend == "file" and self.detect.backend != "file":
            raise ValueError(
                "pose2d.backend 'file' reads the keypoints of detect.file: set detect.backend 'file'"
            )
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str | None) -> str | None:
        # The name becomes a directory: it must not climb out of the output directory.
        if v is not None and not re.fullmatch(NAME_PATTERN, v):
            raise ValueError(f"must match {NAME_PATTERN} (letters, digits, '.', '_', '-'; no '/' or '..')")
        if v in {".", ".."}:
            raise ValueError("'.' and '..' are not scene names")
        return v


SCHEMA_PATH = Path(__file__).with_name("scene.schema.json")


def scene_json_schema() -> str:
    """The JSON schema of scene.yaml, as committed in schemas/scene.schema.json."""
    return json.dumps(Scene.model_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(scene_json_schema())
    print(f"wrote {SCHEMA_PATH}")
