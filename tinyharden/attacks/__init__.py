"""Adversarial attacks and their honest scoring: the engine of `tinyharden attack`.

- `autoattack`: the AutoAttack ensemble (engines `apgd_graph`, `fab_graph`; flags in
  `autoattack_checks`);
- `target`: the `Target` protocol (what an attack queries) and `KerasTarget`;
- `base`: the `Attack` contract and the registry (fgsm, pgd, cw, apgd, apgd-art, square,
  square-art, boundary, zoo, transfer), one small class per attack with keyword-only budget arguments;
- `evaluation`: re-checking examples, Wilson intervals, worst case;
- `masking`: gradient-masking sanity checks;
- `suite`: runs a suite over an eps sweep; `report`: attack.json layout and table.

Everything works in [0, 1] data units (see `target`). Importing this package does not
import TensorFlow.

Attacks and their default budgets (override with `-p NAME.KEY=VALUE` or a recipe's
`attack.params`; every value used is recorded in attack.json):

  name      kind       implementation                      defaults
  fgsm      white-box  tinyharden in-graph                 rel_step=1 (step = eps)
  pgd       white-box  tinyharden in-graph                 steps=20, rel_step=0.25, random_start, restarts=1, loss=ce
  apgd      white-box  tinyharden in-graph (apgd_graph)    steps=100, restarts=1, rel_step=2 (APGD-CE)
  apgd-art  white-box  ART AutoProjectedGradientDescent    steps=100, restarts=1, rel_step=2 (APGD-CE)
  cw        white-box  foolbox L2CarliniWagnerAttack       binary_search_steps=5, steps=100, initial_const=0.01
  square    black-box  tinyharden compiled (Linf; L2: ART) max_iter=1000 queries, p_init=0.05 (Linf) / 0.1 (L2)
  square-art black-box ART SquareAttack                    max_iter=1000, p_init=0.05 (Linf) / 0.1 (L2)
  boundary  black-box  foolbox BoundaryAttack              steps=1000 (foolbox: 25,000)
  zoo       black-box  ART ZooAttack                       max_iter=20, binary_search_steps=1, nb_parallel=128
  transfer  transfer   tinyharden PGD on the source model  steps=20, rel_step=0.25, random_start
  autoattack       white-box  APGD-CE, APGD-T, FAB-T in-graph + compiled Square (`autoattack`)
                   steps=100, targets=9, fab_steps=100, square_queries=5000, square_p_init=0.8
  autoattack-rand  white-box  APGD-CE, APGD-DLR in-graph with EOT  steps=100, eot_iter=20

autoattack runs its components in sequence on the samples every earlier one left robust,
re-checking each stage; a model random at inference is refused with a pointer to
autoattack-rand.

`--precision mixed_bfloat16` (recipe `attack.precision`) runs fgsm, pgd, apgd and autoattack's
APGD/FAB stages on a bfloat16 twin of the model (`precision`); every example is still
re-predicted and scored in float32, and attack.json records each attack's precision.

cw, boundary and zoo are minimum-norm attacks (run once, scored at every eps in the
suite's norm). ZOO is slow (ART runs it one sample at a time: about 0.5 s per digits
sample at the default budget, far more on CIFAR-10), so its default budget is a smoke
test, not a bound; so is boundary's.
"""
from tinyharden.attacks.base import REGISTRY, Attack, AttackOutput, make_attack
from tinyharden.attacks.target import KerasTarget, Target

ATTACKS = REGISTRY.names()

__all__ = ["ATTACKS", "Attack", "AttackOutput", "KerasTarget", "Target", "make_attack"]
