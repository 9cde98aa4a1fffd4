"""Box maths: IoU, NMS and recall matching on hand-checkable boxes."""

from __future__ import annotations

import numpy as np

from tasks.boxes import area, greedy_recall_match, iou_matrix, nms


def test_iou_of_known_overlaps() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array(
        [[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 5.0, 5.0]]
    )
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 50 / 150, 0.0, 25 / 100])
    np.testing.assert_allclose(area(b), [100, 100, 100, 25])


def test_nms_keeps_best_of_each_cluster_in_score_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10.0]])
    scores = np.array([0.5, 0.9, 0.7, 0.1])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [1, 2])
    # A looser threshold than the overlap keeps the overlapping pair (IoU 9/11 = 0.82).
    np.testing.assert_array_equal(nms(boxes[:2], scores[:2], 0.9), [1, 0])
    assert len(nms(np.zeros((0, 4)), np.zeros(0), 0.5)) == 0


def test_recall_match_takes_best_pairs_first_and_uses_each_prediction_once() -> None:
    gt = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [100, 100, 110, 110.0]])
    pred = np.array([[2, 0, 12, 10], [0, 0, 10, 9.0]])
    # pred 0 is perfect for GT 1; pred 1 (IoU 0.9 with GT 0) goes to GT 0; GT 2 has nothing.
    np.testing.assert_array_equal(greedy_recall_match(pred, gt), [1, 0, -1])
    np.testing.assert_array_equal(greedy_recall_match(pred[:1], gt[:2]), [-1, 0])
