"""Learning-rate schedules, per optimizer step: linear warmup then cosine, step or constant."""
from __future__ import annotations

import math

from tinyharden._tf import keras, tf


@keras.utils.register_keras_serializable(package="tinyharden")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0, kind: str = "cosine",
                 boundaries: list[int] | None = None, gamma: float = 0.1):
        self.base_lr = float(base_lr)
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.boundaries = [int(b) for b in (boundaries or [])]
        self.gamma = float(gamma)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        lr = tf.constant(self.base_lr, tf.float32)
        if self.kind == "cosine":
            t = tf.clip_by_value((step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps), 0.0, 1.0)
            lr = lr * 0.5 * (1.0 + tf.cos(math.pi * t))
        elif self.kind == "step":
            for b in self.boundaries:
                lr = tf.where(step >= b, lr * self.gamma, lr)
        if self.warmup_steps:
            lr = tf.where(step < self.warmup_steps, self.base_lr * (step + 1) / self.warmup_steps, lr)
        return lr

    def get_config(self):
        return dict(base_lr=self.base_lr, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                    kind=self.kind, boundaries=self.boundaries, gamma=self.gamma)


def make_optimizer(train, steps_per_epoch: int):
    sched = WarmupSchedule(
        train.lr, train.epochs * steps_per_epoch, int(train.warmup_epochs * steps_per_epoch), train.schedule,
        [e * steps_per_epoch for e in train.step_epochs], train.step_gamma)
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(sched, momentum=train.momentum, nesterov=True)
    if train.optimizer == "adamw":
        return keras.optimizers.AdamW(sched, weight_decay=train.weight_decay or 1e-4)
    return keras.optimizers.Adam(sched)
