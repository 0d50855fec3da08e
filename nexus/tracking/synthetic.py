"""Synthetic multi-object tracking sequences: ground truth, noisy detections and rendered frames.

Objects move at constant velocity with jitter, are born and die at random frames, and can be hidden
for short spells (occlusion: in the ground truth, absent from the detections). Detections add box
noise, random misses and false positives. Every object has its own colour, so rendered frames also
serve appearance (re-id) trackers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from nexus.detections import Detections


@dataclass(frozen=True)
class SyntheticMOTConfig:
    """Shape of a synthetic sequence.

    Attributes:
        frames: sequence length.
        objects: objects in total over the sequence (not all alive at once when ``births`` is on).
        width: frame width in pixels.
        height: frame height in pixels.
        box_size: (min, max) box side in pixels.
        max_speed: largest speed in pixels per frame (per axis).
        jitter: standard deviation of per-frame motion noise, pixels.
        box_noise: standard deviation of detection box noise, pixels.
        miss_rate: probability that a visible object is not detected in a frame.
        false_positives: mean false-positive detections per frame (Poisson).
        occlusion_rate: probability per object and frame that an occlusion spell starts.
        occlusion_length: frames an occlusion spell lasts.
        births: objects appear and disappear at random frames; otherwise all live throughout.
        classes: number of classes, assigned to objects at random.
        seed: random seed (the sequence is a pure function of the config).

    Example:
        >>> seq = generate_mot_sequence(SyntheticMOTConfig(frames=10, objects=3, seed=1))
        >>> len(seq.ground_truth), len(seq.detections)
        (10, 10)
    """

    frames: int = 100
    objects: int = 10
    width: int = 640
    height: int = 480
    box_size: tuple[int, int] = (24, 64)
    max_speed: float = 3.0
    jitter: float = 0.3
    box_noise: float = 1.0
    miss_rate: float = 0.05
    false_positives: float = 0.5
    occlusion_rate: float = 0.0
    occlusion_length: int = 5
    births: bool = True
    classes: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frames < 1 or self.objects < 0:
            raise ValueError(f"frames must be >= 1 and objects >= 0, got {self.frames}, {self.objects}")
        if not 4 <= self.box_size[0] <= self.box_size[1] < min(self.width, self.height):
            raise ValueError(f"box_size {self.box_size} must be (min, max), 4 <= min <= max < frame size")
        for name in ("miss_rate", "occlusion_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be a probability in [0, 1), got {getattr(self, name)}")
        if self.false_positives < 0 or self.box_noise < 0 or self.jitter < 0:
            raise ValueError("false_positives, box_noise and jitter must be >= 0")
        if self.classes < 1:
            raise ValueError(f"classes must be >= 1, got {self.classes}")


@dataclass
class SyntheticMOTSequence:
    """A generated sequence; frame ``t`` (0-based) is MOTChallenge frame ``t + 1``.

    Attributes:
        config: what generated it.
        ground_truth: per frame, the objects in view with ``tracker_id`` = object id (1-based).
        detections: per frame, noisy detections with ``confidence`` (false positives score lower) and
            ``data["object_id"]`` (0 for false positives), for analysis only.
        colors: BGR colour of each object id.
    """

    config: SyntheticMOTConfig
    ground_truth: list[Detections]
    detections: list[Detections]
    colors: dict[int, tuple[int, int, int]]

    def render(self, frame: int) -> np.ndarray:
        """Draw frame ``frame`` (0-based): grey background, each visible object a filled box."""
        config = self.config
        image = np.full((config.height, config.width, 3), 96, dtype=np.uint8)
        gt = self.ground_truth[frame]
        order = np.argsort(gt.area)[::-1]  # small boxes drawn last (in front)
        for i in order:
            x1, y1, x2, y2 = (round(v) for v in gt.xyxy[i])
            cv2.rectangle(image, (x1, y1), (x2, y2), self.colors[int(gt.tracker_id[i])], -1)
        return image


def generate_mot_sequence(config: SyntheticMOTConfig) -> SyntheticMOTSequence:
    """Generate ground truth and detections for ``config`` (deterministic for a seed).

    Example:
        >>> seq = generate_mot_sequence(SyntheticMOTConfig(frames=50, objects=5, births=False, seed=0))
        >>> seq.ground_truth[0].tracker_id.tolist()
        [1, 2, 3, 4, 5]
    """
    rng = np.random.default_rng(config.seed)
    n, t_max = config.objects, config.frames
    size = rng.uniform(config.box_size[0], config.box_size[1], size=(n, 2))
    pos = rng.uniform([0, 0], [config.width, config.height], size=(n, 2)) - size / 2
    vel = rng.uniform(-config.max_speed, config.max_speed, size=(n, 2))
    if config.births:
        start = rng.integers(0, max(1, t_max // 2), size=n)
        life = rng.integers(max(2, t_max // 4), t_max + 1, size=n)
        end = np.minimum(start + life, t_max)
    else:
        start, end = np.zeros(n, dtype=int), np.full(n, t_max)
    classes = rng.integers(0, config.classes, size=n)
    colors = {
        i + 1: tuple(int(c) for c in rng.integers(0, 256, size=3)) for i in range(n)
    }  # object ids are 1-based
    occluded_until = np.full(n, -1)
    ground_truth: list[Detections] = []
    detections: list[Detections] = []
    for t in range(t_max):
        pos = pos + vel + rng.normal(0, config.jitter, size=(n, 2))
        # bounce off the borders so objects stay in view
        low, high = np.zeros(2), np.array([config.width, config.height]) - size
        vel = np.where((pos < low) | (pos > high), -vel, vel)
        pos = np.clip(pos, low, high)
        alive = (start <= t) & (t < end)
        starts_occlusion = rng.random(n) < config.occlusion_rate
        occluded_until = np.where(
            alive & starts_occlusion & (occluded_until < t), t + config.occlusion_length, occluded_until
        )
        boxes = np.concatenate([pos, pos + size], axis=1)
        ids = np.flatnonzero(alive)
        ground_truth.append(Detections(xyxy=boxes[ids], class_id=classes[ids], tracker_id=ids + 1))
        detected = alive & (occluded_until < t) & (rng.random(n) >= config.miss_rate)
        det_ids = np.flatnonzero(detected)
        noisy = boxes[det_ids] + rng.normal(0, config.box_noise, size=(len(det_ids), 4))
        conf = np.clip(rng.normal(0.8, 0.1, size=len(det_ids)), 0.3, 1.0)
        fp_count = rng.poisson(config.false_positives)
        fp_size = rng.uniform(config.box_size[0], config.box_size[1], size=(fp_count, 2))
        fp_pos = rng.uniform([0, 0], [config.width, config.height], size=(fp_count, 2)) - fp_size / 2
        fp_boxes = np.concatenate([fp_pos, fp_pos + fp_size], axis=1)
        fp_conf = rng.uniform(0.1, 0.65, size=fp_count)
        detections.append(
            Detections(
                xyxy=np.concatenate([noisy, fp_boxes]),
                confidence=np.concatenate([conf, fp_conf]),
                class_id=np.concatenate([classes[det_ids], rng.integers(0, config.classes, size=fp_count)]),
                data={"object_id": np.concatenate([det_ids + 1, np.zeros(fp_count, dtype=np.int64)])},
            )
        )
    return SyntheticMOTSequence(config, ground_truth, detections, colors)
