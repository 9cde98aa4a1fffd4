"""The reduce step: finetune the regressor network's WEIGHTS on one frame so that its people stand on
their floor while their projections keep fitting their 2D keypoints (reference/method.md section 4).

- terms.py: the loss terms and ground-plane helpers (pure tensor functions);
- people.py: a frame's people, the network run over them (NetOutput), a finetune's result (Fit);
- method.py: what a method is (CrowdMethod) and `finetune`; registry.py: the methods by name;
- crowdrec.py: the published procedure; global_.py: the frame's floors and who stands on them
  (tasks/support.py), for the whole frame;
- frame.py: the step on one frame (crowd_frame): rows, metadata and report.
"""

from tasks.crowd.frame import CrowdResult, crowd_frame
from tasks.crowd.method import CrowdMethod, finetune
from tasks.crowd.people import Fit, NetOutput, People, crowd_inputs, keypoint_people, predict_all
from tasks.crowd.registry import CROWD_METHODS, crowd_method

__all__ = [
    "CROWD_METHODS",
    "CrowdMethod",
    "CrowdResult",
    "Fit",
    "NetOutput",
    "People",
    "crowd_frame",
    "crowd_inputs",
    "crowd_method",
    "finetune",
    "keypoint_people",
    "predict_all",
]
