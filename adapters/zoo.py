"""The reference-model zoo: shipped weights, their cards, and the script that remakes them.

Each model ``NAME`` ships ``weights/NAME.safetensors`` and ``weights/NAME.json`` (its
architecture config, training settings, validation metric and the weights' sha256), and a
card ``cards/NAME.md``. ``genbench zoo train`` re-runs every registered trainer from its seed.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable

import torch

from genbench.errors import UserError
from genbench.registry import Registry

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"
CARDS_DIR = PACKAGE_DIR / "cards"

#: name -> ``train(seed: int, out_dir: Path) -> None`` (lazy "module:function" strings)
TRAINERS = Registry("zoo model", list_command="genbench zoo list")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def kernel_fingerprint() -> dict[str, Any]:
    """What decides whether a retrain is bit-identical: the CPU model, the instruction set
    torch dispatches to, the torch version and the thread count. Two machines with the same
    fingerprint run the same kernels in the same order; any difference (another CPU model,
    AVX-512 against AVX2, another torch) changes float rounding, and so the trained bytes."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"machine": platform.machine(), "cpu": cpu, "capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def save_model(
    name: str,
    module: torch.nn.Module,
    *,
    config: dict[str, Any],
    card: dict[str, Any],
    out_dir: Path = WEIGHTS_DIR,
) -> Path:
    """Write NAME.safetensors, NAME.json (config + card + sha256) and cards/NAME.md.

    card: at least ``paradigm``, ``modality``, ``summary``, ``train_steps``, ``seed``,
    ``val_metric`` ({"name":..., "value":..., "unit":...}) and ``train_seconds``.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(path))
    params = sum(v.numel() for k, v in state.items())
    meta = {
        "name": name,
        "config": config,
        "card": {**card, "parameters": params},
        "sha256": file_sha256(path),
        "trained_on": f"{platform.machine()} torch {torch.__version__}, {torch.get_num_threads()} threads",
        "trained_at": time.strftime("%Y-%m-%d"),
        "kernels": kernel_fingerprint(),
    }
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    cards_dir = CARDS_DIR if out_dir == WEIGHTS_DIR else out_dir
    cards_dir.mkdir(parents=True, exist_ok=True)
    (cards_dir / f"{name}.md").write_text(meta_to_card_markdown(meta))
    return path


def meta_to_card_markdown(meta: dict[str, Any]) -> str:
    card = meta["card"]
    vm = card.get("val_metric", {})
    lines = [
        f"# {meta['name']}",
        "",
        card.get("summary", ""),
        "",
        f"- paradigm: {card.get('paradigm')}, modality: {card.get('modality')}",
        f"- parameters: {card['parameters']:,}",
        f"- training: {card.get('train_steps')} steps, seed {card.get('seed')}, "
        f"{card.get('train_seconds', 0):.0f} s on {meta['trained_on']}",
        f"- validation: {vm.get('name')} = {vm.get('value', float('nan')):.4f} {vm.get('unit', '')}",
        f"- weights: `{meta['name']}.safetensors`, sha256 `{meta['sha256']}`",
        f"- reproduce: `genbench zoo train --model {meta['name']}`",
        "",
        "## Config",
        "",
        "```json",
        json.dumps(meta["config"], indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(lines)


def load_model_state(name: str, weights_dir: Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) of a zoo model, after checking the file against its recorded sha256."""
    from safetensors.torch import load_file

    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    path = weights_dir / f"{name}.safetensors"
    meta_path = weights_dir / f"{name}.json"
    if not path.exists() or not meta_path.exists():
        raise UserError(
            f"no weights for zoo model {name!r} in {weights_dir} (need {path.name} and {meta_path.name}); "
            f"run `genbench zoo train --model {name}`"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{meta_path}: not valid JSON ({e}); run `genbench zoo train --model {name}`") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise UserError(f"{meta_path}: not a zoo model card (no 'config' table); "
                        f"run `genbench zoo train --model {name}`")
    if meta.get("name", name) != name:
        raise UserError(f"{meta_path}: holds the weights of zoo model {meta.get('name')!r}, not {name!r}; "
                        f"load it as {meta.get('name')}:{weights_dir} or point {name} at its own weights")
    digest = file_sha256(path)
    if digest != meta.get("sha256"):
        raise UserError(
            f"{path}: sha256 {digest[:16]}... does not match {meta_path.name} field 'sha256' "
            f"({str(meta.get('sha256'))[:16]}...); the file is corrupt or from another run: "
            f"run `genbench zoo train --model {name}`"
        )
    try:
        return load_file(str(path)), meta
    except Exception as e:  # safetensors raises its own error types for a damaged header or data
        raise UserError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e}); its sha256 matches "
                        f"{meta_path.name}, so both were replaced: run `genbench zoo train --model {name}`") from None


def load_transformer(name: str, path: str | None, device: str | torch.device):
    """(model in eval mode on ``device``, meta) of a zoo model built on ``nn.Transformer``
    (its config under ``meta["config"]["transformer"]``), after the sha256 check."""
    from genbench.adapters.nn import Transformer, TransformerConfig

    state, meta = load_model_state(name, Path(path) if path is not None else None)
    try:
        model = Transformer(TransformerConfig(**meta["config"]["transformer"]))
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as e:
        raise UserError(f"{path or WEIGHTS_DIR}: {name}.safetensors does not fit {name}'s architecture "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                        f"run `genbench zoo train --model {name}`") from None
    return model.to(torch.device(device)).eval(), meta


def with_overrides(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A trainer's settings: ``defaults`` with the keyword overrides that name one of them
    (the rest belong to the trainer's other tables)."""
    return {**defaults, **{k: v for k, v in overrides.items() if k in defaults}}


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (dropout, init) and return a dedicated generator for data order."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


#: every trainer runs on one intra-op thread: the shipped weights were made so, and a
#: different thread count changes float summation order and so the weights
TRAIN_THREADS = 1


def _train_one(name: str, seed: int, out_dir: str) -> tuple[str, float]:
    """Train one model in this process (a worker of ``train``) -> (name, seconds)."""
    import genbench.adapters  # noqa: F401  (declares the trainers in a fresh worker)

    torch.set_num_threads(TRAIN_THREADS)
    t0 = time.perf_counter()
    TRAINERS.get(name)(seed=seed, out_dir=Path(out_dir))
    return name, time.perf_counter() - t0


def _shipped_train_seconds(name: str) -> float:
    try:
        return float(json.loads((WEIGHTS_DIR / f"{name}.json").read_text())["card"]["train_seconds"])
    except (OSError, KeyError, ValueError, TypeError):
        return 0.0


def train(names: list[str] | None = None, *, seed: int = 0, out_dir: Path = WEIGHTS_DIR, jobs: int = 1,
          log: Callable[[str], None] = print) -> list[str]:
    """Train the named zoo models (all when None), ``jobs`` at a time, each in one thread;
    returns the names trained. With ``jobs > 1`` each model trains in its own process, so the
    weights are the same as with ``jobs=1``."""
    names = names or TRAINERS.names()
    for n in names:
        TRAINERS.get(n)  # fail on a typo before any training
    # longest first (by the shipped cards' times), so parallel jobs finish together
    names = sorted(names, key=lambda n: -_shipped_train_seconds(n))
    if jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {jobs}")
    t0 = time.perf_counter()
    log(f"training {', '.join(names)} (seed {seed}, {min(jobs, len(names))} at a time, "
        f"{TRAIN_THREADS} thread each) ...")
    if jobs == 1 or len(names) == 1:
        threads = torch.get_num_threads()
        try:
            for name in names:
                log(f"trained {name} in {_train_one(name, seed, str(out_dir))[1]:.0f} s")
        finally:
            torch.set_num_threads(threads)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a fresh interpreter per worker, so no torch thread pool is inherited by fork
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_train_one, name, seed, str(out_dir)) for name in names]
            for future in as_completed(futures):
                name, seconds = future.result()
                log(f"trained {name} in {seconds:.0f} s")
    log(f"zoo trained in {time.perf_counter() - t0:.0f} s wall time")
    return names
