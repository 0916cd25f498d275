"""The bench's declared rules, read by the sweep configs and by the report alike.

Written down before the reruns (issue "Verdicts that survive review"), so that no threshold is
chosen after seeing the results it decides:

- Each protocol's gate is in the protocol's own metric: per-token accuracy for the encoder
  protocol (Delétang et al. 2023; Ruoss et al. 2023 report it), exact match of the whole answer
  for the decoder protocol (Kazemnejad et al. 2023 report it). Per-token accuracy's chance
  levels are high (67-80% for the binary and sort tasks), so its bar stays near 1; exact match
  allows one answer in twenty to be wrong.
- The seed is the unit: an ordering needs a Holm-adjusted p below ALPHA and at least MIN_SEEDS
  learned seeds on each side.
- An aggregate claim (a mean over a paper's tasks) is judged over at least MIN_AGGREGATE_TASKS
  tasks where both sides are learned; over one task it would only repeat that task's verdict.
"""

GATES = {
    "encoder": {"metric": "token_accuracy", "threshold": 0.99},
    "decoder": {"metric": "exact_match", "threshold": 0.95},
}
MIN_SEEDS = 5
ALPHA = 0.05
MIN_GATE_EXAMPLES = 1000
MIN_AGGREGATE_TASKS = 2
