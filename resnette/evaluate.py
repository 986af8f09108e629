"""`resnette evaluate`: a trained run measured on its validation split, its training split,
or any folder laid out <label>/*.jpg; results land in the run folder (evaluation.json, the
confusion matrix and the top losses) and are returned for printing."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from resnette import runs
from resnette.predict import labelled_folder
from resnette.trained import load_trained
from resnette.utils import ResnetteError
from resnette.workflow import build_data, evaluate_into


def evaluate_run(run_path: str | Path, split: str = "valid", folder: str | Path | None = None,
                 tta: bool = False, bs: int = 64) -> dict:
    run = runs.open_run(run_path)
    trained = load_trained(run.path)
    if folder is not None:
        batches = list(labelled_folder(Path(folder), trained, bs))
        ev = evaluate_into(run, trained.model, batches, trained.names, split=str(folder), tta=tta)
        return ev
    cfg = replace(trained.config, bs=bs, device="cpu")
    dls = build_data(cfg, augment=False)
    if list(dls.vocab) != list(trained.vocab):
        raise ResnetteError(f"the data's classes ({', '.join(dls.vocab[:5])}, ...) are not the "
                            f"run's ({', '.join(trained.vocab[:5])}, ...); was the folder changed?")
    loader = dls.valid if split == "valid" else dls.train
    return evaluate_into(run, trained.model, loader, trained.names, split=split, tta=tta)
