"""The run directory's layout: the name of every file a scene and its frames write, and the stage order.

```
<output>/<scene>/
    manifest.json                   the scene: resolved config, versions, each frame's status
    report.html                     stages, timings, pictures and metrics of every frame
    persons/<frame>.parquet         the product: one file per frame (schemas/persons.py)
    <frame>/
        manifest.json               the frame's completed units (pipeline/rundir.py)
        image.zarr                  ingest: the pyramid (schemas/image_store.py)
        detections.parquet          detect (schemas/tables.py DETECTIONS)
        keypoints.parquet           pose2d (KEYPOINTS)
        smpl.parquet                regress (SMPL, finetuned false)
        crowd.parquet, crowd.json   crowd (SMPL after the finetune; its report)
        overlay.png meshes.png birdseye.png sideview.png    pictures
<output>/_synthetic/...             generated frames and their truth.json (input.synthetic)
```
Every module that reads or writes one of these files takes its name from here.
"""

from __future__ import annotations

from pathlib import Path

STAGES = ("ingest", "detect", "pose2d", "regress", "crowd", "write")

MANIFEST = "manifest.json"
REPORT = "report.html"
PERSONS_DIR = "persons"

STORE_NAME = "image.zarr"
DETECTIONS_FILE = "detections.parquet"
KEYPOINTS_FILE = "keypoints.parquet"
SMPL_FILE = "smpl.parquet"
CROWD_FILE = "crowd.parquet"
CROWD_REPORT = "crowd.json"

OVERLAY_FILE = "overlay.png"
MESHES_FILE = "meshes.png"
BIRDSEYE_FILE = "birdseye.png"
SIDEVIEW_FILE = "sideview.png"
PICTURES = (OVERLAY_FILE, MESHES_FILE, BIRDSEYE_FILE, SIDEVIEW_FILE)

TRUTH_FILE = "truth.json"
SYNTHETIC_DIR = "_synthetic"


def persons_file(dataset: Path, frame: str) -> Path:
    """Where a frame's rows live in a persons dataset (`<scene dir>/persons/`)."""
    return dataset / f"{frame}.parquet"
