"""Live curves: every run also writes TensorBoard event files, with the run record's metric names,
and a resume shows no point twice (the interrupted attempt's events after the checkpoint are purged)."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_train import small_config

from m3po.record import read_jsonl
from m3po.train import Trainer

MEASURED = ("time/", "mem/")  # wall-clock and memory figures differ between identical runs


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the run's event files, as TensorBoard shows them (purges applied)."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, None if tag.startswith(MEASURED) else e.value) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def test_event_files_carry_the_record_metrics_and_a_resume_duplicates_no_point(tmp_path):
    cfg = small_config()
    Trainer(cfg, tmp_path / "straight", progress=False).run()

    def interrupt(name, value, step):
        if step > 96:  # after the checkpoint at 64, so the attempt wrote events the resume replays
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "resumed", on_metrics=interrupt, progress=False).run()
    assert Trainer(cfg, tmp_path / "resumed", progress=False).run()["resumed_from"] == 64

    straight, resumed = scalars(tmp_path / "straight"), scalars(tmp_path / "resumed")
    assert resumed == straight
    train = read_jsonl(tmp_path / "straight" / "train.jsonl")
    for name in ("loss/actor", "ppo/clip_fraction", "time/sps"):
        assert [step for step, _ in straight[name]] == [row["step"] for row in train]
    assert [step for step, _ in straight["eval/score_mean"]] == [0, 128]
    assert "eval/success/mw-reach" in straight and "eval/return/mw-reach" in straight
    for tag, points in resumed.items():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), tag


def test_the_switch_turns_event_files_off(tmp_path):
    Trainer(small_config(steps=64, tensorboard=False), tmp_path, progress=False).run()
    assert not (tmp_path / "tensorboard").exists()
