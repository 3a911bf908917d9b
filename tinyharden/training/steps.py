"""The compiled training step: cross-entropy (optionally mixed with distillation from a
teacher) + per-layer Jacobian penalty, with optional adversarial examples mixed into the batch.

One tf.function per run. With Jacobian regularization on the whole batch, a single
forward pass under a nested tape serves both the cross-entropy and the input-Jacobian
projections, so JR costs one extra backward pass per projection and layer, not an extra
forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

from tinyharden._tf import tf
from tinyharden.defenses.adversarial import default_noise, default_step_size, linf_pgd
from tinyharden.defenses.jacobian import feature_model, frobenius_estimate


@dataclass
class StepConfig:
    num_classes: int
    label_smoothing: float = 0.0
    jr_layers: tuple[str, ...] = ()
    jr_lambdas: tuple[float, ...] = ()
    jr_projections: int = 1
    jr_fraction: float = 1.0
    adv_method: str | None = None
    adv_eps: float = 0.0  # model input units
    adv_steps: int = 1
    adv_step_size: float = 0.0
    adv_ratio: float = 1.0
    adv_random_start: bool = True
    adv_noise: float = 1.0
    adv_project: bool = True
    lo: float = 0.0
    hi: float = 1.0
    distill_weight: float = 0.0
    distill_temperature: float = 1.0

    @classmethod
    def from_recipe(cls, recipe, num_classes: int, input_range: tuple[float, float]) -> "StepConfig":
        lo, hi = input_range
        cfg = cls(num_classes=num_classes, label_smoothing=recipe.train.label_smoothing, lo=lo, hi=hi)
        jr = recipe.robustness.jacobian
        if jr is not None:
            pairs = jr.active()
            cfg.jr_layers = tuple(p[0] for p in pairs)
            cfg.jr_lambdas = tuple(p[1] for p in pairs)
            cfg.jr_projections = jr.projections
            cfg.jr_fraction = jr.batch_fraction
        kd = recipe.train.distill
        if kd is not None:
            cfg.distill_weight, cfg.distill_temperature = kd.weight, kd.temperature
        adv = recipe.robustness.adversarial
        if adv is not None:
            scale = hi - lo  # eps is given in [0,1] data units
            cfg.adv_method = adv.method
            cfg.adv_steps = adv.steps if adv.method == "pgd" else 1
            cfg.adv_eps = adv.eps * scale
            cfg.adv_step_size = (adv.step_size or default_step_size(adv.method, adv.eps, cfg.adv_steps)) * scale
            cfg.adv_ratio = adv.ratio
            cfg.adv_random_start = adv.random_start or adv.method != "pgd"
            cfg.adv_noise = float(adv.noise if adv.noise is not None else default_noise(adv.method))
            cfg.adv_project = adv.method != "nfgsm"
        return cfg


def distill_loss(teacher_logits, student_logits, temperature: float):
    """Mean T^2 * KL(softmax(t/T) || softmax(s/T)); the T^2 keeps its gradients on the CE's scale."""
    log_t = tf.nn.log_softmax(teacher_logits / temperature)
    log_s = tf.nn.log_softmax(student_logits / temperature)
    return temperature ** 2 * tf.reduce_mean(tf.reduce_sum(tf.exp(log_t) * (log_t - log_s), axis=-1))


def make_train_step(model, optimizer, cfg: StepConfig, teacher=None):
    """`teacher` (a logits model taking the same inputs) is needed when cfg.distill_weight > 0."""
    if cfg.distill_weight > 0 and teacher is None:
        raise ValueError("distillation needs a teacher model")
    feat = feature_model(model, list(cfg.jr_layers)) if cfg.jr_layers else None
    persistent = cfg.jr_projections > 1 or len(cfg.jr_layers) > 1

    def loss_ce(y, logits):
        onehot = tf.one_hot(y, cfg.num_classes)
        return tf.reduce_mean(tf.keras.losses.categorical_crossentropy(
            onehot, logits, from_logits=True, label_smoothing=cfg.label_smoothing))

    def jr_terms(x):
        with tf.GradientTape(persistent=persistent) as inner:
            inner.watch(x)
            outs = feat(x, training=True)
        regs = [tf.reduce_mean(frobenius_estimate(inner, o, x, cfg.jr_projections)) for o in outs[:-1]]
        del inner
        return outs[-1], regs

    @tf.function(autograph=False)
    def step(x, y, seed):
        if cfg.adv_method is not None:
            m = int(round(cfg.adv_ratio * x.shape[0])) if x.shape[0] else tf.shape(x)[0]
            x_adv = linf_pgd(model, x[:m], y[:m], eps=cfg.adv_eps, step_size=cfg.adv_step_size, steps=cfg.adv_steps,
                             lo=cfg.lo, hi=cfg.hi, random_start=cfg.adv_random_start, noise=cfg.adv_noise,
                             project=cfg.adv_project, training=False, seed=seed)
            x = tf.concat([x_adv, x[m:]], axis=0)
        with tf.GradientTape() as tape:
            regs = []
            if feat is not None and cfg.jr_fraction >= 1.0:
                logits, regs = jr_terms(x)
            else:
                logits = model(x, training=True)
                if feat is not None:
                    k = max(1, int(round(cfg.jr_fraction * x.shape[0])))
                    _, regs = jr_terms(x[:k])
            logits = tf.cast(logits, tf.float32)  # bfloat16 under mixed precision
            ce = loss_ce(y, logits)
            task = ce
            if cfg.distill_weight > 0:
                soft = tf.stop_gradient(tf.cast(teacher(x, training=False), tf.float32))
                kd = distill_loss(soft, logits, cfg.distill_temperature)
                task = (1.0 - cfg.distill_weight) * ce + cfg.distill_weight * kd
            penalty = tf.add_n([lam * r for lam, r in zip(cfg.jr_lambdas, regs)]) if regs else 0.0
            loss = task + penalty
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), y), tf.float32))
        return loss, ce, tf.stack(regs) if regs else tf.zeros([0]), correct

    return step


def make_eval_step(model):
    @tf.function(autograph=False)
    def evaluate(x, y):
        logits = tf.cast(model(x, training=False), tf.float32)
        loss = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), y), tf.float32))
        return loss, correct

    return evaluate
