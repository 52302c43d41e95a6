"""Vehicle sensor windows: which manoeuvre is the car doing?

Each sample is a window of six sensor channels sampled at 50 Hz (a float32 tensor of shape
(6, window_length)): longitudinal, lateral and vertical acceleration (m/s^2), yaw rate (rad/s),
speed (m/s) and steering angle (rad). The label is one of six manoeuvres. The windows are
simulated from a seed, so the example needs no download: each manoeuvre shapes the signals
(braking pulls the longitudinal acceleration down and the speed with it, a turn raises the yaw
rate and the lateral acceleration, a lane change steers one way and then back), at a random
moment, strength and duration, under sensor noise, sensor offsets and road vibration.
"""

import numpy as np
import torch
from torch.utils.data import Dataset

SAMPLE_RATE = 50  # Hz
CHANNELS = ["accel_long", "accel_lat", "accel_vert", "yaw_rate", "speed", "steering"]


class CustomDataset(Dataset):
    classes = ("cruise", "accelerate", "brake", "turn_left", "turn_right", "lane_change")

    def __init__(self, split="train", num_windows=2400, window_length=128, seed=0, transform=None):
        # The test split is a quarter the size of the training split, drawn from its own random stream.
        count = num_windows if split == "train" else num_windows // 4
        rng = np.random.default_rng([seed, 0 if split == "train" else 1])
        self.labels = rng.integers(0, len(self.classes), size=count)
        self.data = np.stack([simulate_window(rng, label, window_length) for label in self.labels])
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        sample = torch.from_numpy(self.data[idx])
        label = int(self.labels[idx])
        if self.transform:
            sample = self.transform(sample)
        return sample, label


def simulate_window(rng, label, length):
    """One (6, length) float32 window of the manoeuvre ``label``."""
    t = np.arange(length) / SAMPLE_RATE
    manoeuvre = CustomDataset.classes[label]
    speed0 = rng.uniform(5, 30)
    # A smooth pulse at a random moment: where the manoeuvre happens inside the window.
    start, duration = rng.uniform(0, 0.4) * t[-1], rng.uniform(0.4, 0.6) * t[-1]
    phase = np.clip((t - start) / duration, 0, 1)
    pulse = np.sin(np.pi * phase) ** 2

    accel_long = np.zeros(length)
    yaw_rate = np.zeros(length)
    steering = np.zeros(length)
    if manoeuvre == "accelerate":
        accel_long = rng.uniform(0.6, 2.5) * pulse
    elif manoeuvre == "brake":
        accel_long = -rng.uniform(0.8, 4.0) * pulse
    elif manoeuvre in ("turn_left", "turn_right"):
        sign = 1 if manoeuvre == "turn_left" else -1
        yaw_rate = sign * rng.uniform(0.08, 0.4) * pulse
        steering = 15 * yaw_rate / max(speed0, 1)
    elif manoeuvre == "lane_change":
        sign = rng.choice([-1, 1])
        yaw_rate = sign * rng.uniform(0.04, 0.15) * np.sin(2 * np.pi * phase) * (phase < 1)
        steering = 15 * yaw_rate / max(speed0, 1)
    accel_long = accel_long + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    speed = np.maximum(speed0 + np.cumsum(accel_long) / SAMPLE_RATE, 0)
    accel_lat = speed * yaw_rate
    roughness = rng.uniform(0.05, 0.6)
    accel_vert = 9.81 + roughness * rng.standard_normal(length)

    window = np.stack([accel_long, accel_lat, accel_vert, yaw_rate, speed, steering])
    noise = np.array([0.25, 0.25, 0.1, 0.02, 0.3, 0.01])[:, None]
    offset = np.array([0.1, 0.1, 0.05, 0.01, 0.0, 0.005])[:, None] * rng.standard_normal((6, 1))
    return (window + offset + noise * rng.standard_normal((6, length))).astype(np.float32)
