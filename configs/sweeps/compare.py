"""Compare encodings on one task, yours among them: one run per encoding, seeds together.

  python -m experiments.sweep --workdir=runs/mine \
      --config=configs/sweeps/compare.py:imports=my_encoding.py,encodings=my_bias;rope;alibi;none
  python -m experiments.sweep --workdir=runs/mine_smoke \
      --config=compare:smoke,imports=my_encoding.py,encodings=my_bias;rope
  python -m experiments.sweep report --workdir=runs/mine

After ":" come comma-separated items (lists separated by ";"):
  encodings=a;b;c  registry names (default rope;alibi;none), each also its run's label.
  imports=x.py;pkg.mod  modules that register encodings of your own (.py paths from the
                   working directory, or dotted module names); every run imports them.
  task=copy        a task config of configs/ (default copy), at its laptop defaults.
  protocol=encoder the task's protocol, "encoder" or "decoder".
  seeds=0;1;2      seeds of every run (default 0;1;2).
  steps=2000       training steps (default: the task config's).
  smoke            the smoke preset (tiny model, 20 steps): checks the machinery in seconds.
Any field of every run can also be changed with --config.overrides.<section>.<field>=<value>.
"""

import ml_collections

from configs.sweeps.common import encoding, sweep_config
from pe_jax.config_files import load_config

_KEYS = ("encodings", "imports", "task", "protocol", "seeds", "steps")


def _items(arg: str | None) -> dict:
    items = {"encodings": "rope;alibi;none", "imports": "", "task": "copy", "seeds": "0;1;2"}
    for item in filter(None, (arg or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep and key == "smoke":
            items["smoke"] = True
        elif sep and key in _KEYS:
            items[key] = value
        else:
            raise ValueError(
                f"compare.py argument {item!r} must be 'smoke' or key=value with key in {_KEYS}."
            )
    return items


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def get_config(arg: str | None = None):
    items = _items(arg)
    task_arg = [f"protocol={items['protocol']}"] if "protocol" in items else []
    task_arg += ["smoke"] if items.get("smoke") else []
    task = load_config(f"{items['task']}:{','.join(task_arg)}")
    names = _split(items["encodings"])
    c = sweep_config(
        name=f"{items['task']}: {', '.join(names)}",
        tasks=[dict(label=items["task"], config=task)],
        encodings=[encoding(name, name) for name in names],
        seeds=tuple(int(s) for s in _split(items["seeds"])),
    )
    c.overrides = ml_collections.ConfigDict(
        {"train": {"steps": int(items.get("steps", task.train.steps))}}
    )
    if _split(items["imports"]):
        c.overrides.imports = tuple(_split(items["imports"]))  # every run imports them first
    return c
