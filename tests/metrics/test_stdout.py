"""The stdout/stderr scraper: forms, x values, counters, malformed lines, NaN/inf."""

from __future__ import annotations

import math

import pytest

from gridrun.errors import ConfigError
from gridrun.metrics.stdout import Patterns, StdoutParser, load_patterns

pytestmark = pytest.mark.unit


def parse(*lines: str, patterns: Patterns | None = None) -> dict[str, list[tuple[float, float]]]:
    parser = StdoutParser(patterns or Patterns())
    out: dict[str, list[tuple[float, float, float]]] = {}
    for i, line in enumerate(lines):
        parser.feed(line, float(i), out)
    return {k: [(s, v) for s, _w, v in pts] for k, pts in out.items()}


def test_colon_equals_and_several_per_line() -> None:
    got = parse("loss: 0.31", "loss=0.25", "epoch: 3 loss: 0.2 acc: 0.9")
    assert got["loss"] == [(0, 0.31), (1, 0.25), (3, 0.2)]
    assert got["acc"] == [(3, 0.9)]
    assert "epoch" not in got


def test_step_precedence_and_non_x_step_keys_are_metrics() -> None:
    got = parse("epoch=2 step=200 loss=1e-3")
    assert got["loss"] == [(200, 0.001)]
    assert got["epoch"] == [(200, 2.0)]


def test_per_key_counters_are_independent() -> None:
    got = parse("loss: 1", "acc: 0.5", "loss: 2", "acc: 0.6 loss: 3")
    assert got["loss"] == [(0, 1), (1, 2), (2, 3)]
    assert got["acc"] == [(0, 0.5), (1, 0.6)]


def test_a_step_only_line_sets_the_step_of_later_lines() -> None:
    got = parse("step: 10", "loss: 0.5", "val_loss: 0.7", "step: 20", "loss: 0.4")
    assert got["loss"] == [(10, 0.5), (20, 0.4)]
    assert got["val_loss"] == [(10, 0.7)]


def test_nan_and_inf_are_values() -> None:
    got = parse("loss: nan", "loss: inf", "loss=-inf", "loss: NaN", "loss: -Infinity")
    vals = [v for _, v in got["loss"]]
    assert math.isnan(vals[0]) and vals[1] == math.inf and vals[2] == -math.inf
    assert math.isnan(vals[3]) and vals[4] == -math.inf


@pytest.mark.parametrize(
    "line",
    [
        "2026-12-01 10:12:30 starting",
        "listening on http://localhost:8080/path",
        "ratio 3/4 done",
        "loss: abc",
        "loss:",
        "=0.5",
        ": 0.5",
        "loss: 0.5.6.7",
        "accuracy: 93%",
        "x:1:2",
        "\x00\xff garbage \ufffd",
        "",
        "key = 12ms",
        "user@host:22",
    ],
)
def test_malformed_lines_give_nothing(line: str) -> None:
    assert parse(line) == {}


def test_progress_bar_redraws_count_once() -> None:
    line = "10%|#  | 1/10 [00:01<00:09, loss=0.9]\r50%|##### | 5/10 [00:05<00:05, loss=0.5]\r"
    assert parse(line) == {"loss": [(0, 0.5)]}


def test_brackets_commas_and_signs() -> None:
    got = parse("Epoch [3/10], Loss: -0.25, lr=+1.5E-04; val/acc=.5 | grad_norm: 12")
    assert got == {
        "Loss": [(0, -0.25)],
        "lr": [(0, 1.5e-4)],
        "val/acc": [(0, 0.5)],
        "grad_norm": [(0, 12.0)],
    }


def test_log_lines_take_their_wall_time_and_skip_other_streams() -> None:
    parser = StdoutParser(Patterns())
    out: dict[str, list[tuple[float, float, float]]] = {}
    parser.feed_log_line("[stdout] [2026-12-01T10:00:00.500000+00:00] loss: 1", out)
    parser.feed_log_line("[stderr] [2026-12-01T10:00:01+00:00] loss: 2", out)
    parser.feed_log_line("[build] [2026-12-01T10:00:01+00:00] loss: 3", out)
    parser.feed_log_line("[stderr] [2026-12-01T10:00:01+00:00] gridrun: code: 3", out)
    parser.feed_log_line("[stdout] [not a time] loss: 4", out)
    parser.feed_log_line("[stdout] no timestamp loss: 4", out)
    assert [(s, v) for s, _, v in out["loss"]] == [(0, 1.0), (1, 2.0)]
    assert out["loss"][0][1] == pytest.approx(1796119200.5)


def test_state_round_trips_counters_and_step() -> None:
    a = StdoutParser(Patterns())
    out: dict[str, list[tuple[float, float, float]]] = {}
    a.feed("loss: 1", 0, out)
    a.feed("loss: 2", 0, out)
    b = StdoutParser(Patterns(), a.state())
    b.feed("loss: 3", 0, out)
    assert [p[0] for p in out["loss"]] == [0, 1, 2]
    a.feed("step: 7", 0, out)
    c = StdoutParser(Patterns(), a.state())
    c.feed("acc: 1", 0, out)
    assert out["acc"] == [(7, 0, 1.0)]


def test_user_patterns_run_first_and_can_replace_the_defaults() -> None:
    pats = load_patterns(
        [
            (
                {
                    "patterns": [
                        {"val_acc": r"Validation accuracy (?P<value>\S+)"},
                        {"bleu": r"BLEU = (\value)"},
                        r"(\key) -> (\value)",
                    ]
                },
                "run.yaml",
            ),
            ({"default_patterns": False}, "config.yaml"),
        ]
    )
    assert pats.defaults is False
    assert parse(
        "BLEU = 27.5, loss: 3", "throughput -> 120", "Validation accuracy 0.5", patterns=pats
    ) == {"bleu": [(0, 27.5)], "throughput": [(0, 120.0)], "val_acc": [(0, 0.5)]}


def test_user_pattern_overrides_a_default_key_on_its_line() -> None:
    pats = load_patterns([({"patterns": {"loss": r"loss: (\S+) \(smoothed\)"}}, "c")])
    assert parse("loss: 5 (smoothed) loss: 9", patterns=pats) == {"loss": [(0, 5.0)]}


@pytest.mark.parametrize(
    "section, message",
    [
        ({"patterns": ["(unclosed"]}, "Invalid metrics pattern"),
        ({"patterns": ["no groups"]}, "must capture a key and a value"),
        ({"patterns": {"loss": "no group"}}, "must capture one value"),
        ({"patern": []}, "Unknown key(s) patern"),
        ({"patterns": 3}, "must be a list or a mapping"),
        ({"step_keys": "epoch"}, "must be a list of names"),
        ("text", "must be a mapping"),
    ],
)
def test_bad_pattern_config_is_one_clear_error(section: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_patterns([(section, "cfg.yaml")])  # type: ignore[list-item]


def test_custom_step_keys() -> None:
    pats = load_patterns([({"step_keys": ["batch"]}, "c")])
    assert parse("batch: 4 loss: 1 epoch: 2", patterns=pats) == {
        "loss": [(4, 1.0)],
        "epoch": [(4, 2.0)],
    }


def test_printed_dicts_count() -> None:
    got = parse("{'loss': 0.31, 'learning_rate': 5e-05, 'epoch': 0.5}", '{"acc": 0.9}')
    assert got == {"loss": [(0.5, 0.31)], "learning_rate": [(0.5, 5e-05)], "acc": [(0, 0.9)]}


# Metrics with precision (issue 19): each shape of line the issue names.


@pytest.mark.parametrize(
    "line",
    [
        "Namespace(dataset='fake', batchSize=64, nz=100, ngf=64, lr=0.0002, beta1=0.5)",
        "    (1): BatchNorm2d(512, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)",
        "    (2): LeakyReLU(negative_slope=0.2, inplace=True)",
        "  (0): Linear(in_features=10, out_features=16, bias=True)",
        "{'model': 'resnet18', 'lr': 0.1, 'epochs': 90}",
        "args: {'data': '/tmp/x', 'batch_size': 32}",
        "TPU available: False, using: 0 TPU cores",
        "HPU available: False, using: 0 HPUs",
        "TrainOutput(global_step=48, training_loss=0.68, metrics={'train_loss': 0.68})",
        "Epoch 1 of 10",
        "Using 4 GPUs for 3 epochs",
        "Solved! Running reward is now 476.2 and the last episode runs to 500 time steps!",
    ],
)
def test_configuration_prints_and_banners_are_not_metrics(line: str) -> None:
    assert parse(line) == {}


def test_a_call_with_keyword_arguments_is_skipped_but_the_rest_of_the_line_is_read() -> None:
    assert parse("model=Net(dropout=0.5) loss=0.25") == {"loss": [(0, 0.25)]}


def test_epoch_then_loss_without_colons() -> None:
    assert parse("epoch 1 loss 0.5", "epoch 2 loss 0.25") == {"loss": [(1, 0.5), (2, 0.25)]}


def test_step_loss_lr_between_bars() -> None:
    assert parse("step 100 | loss 0.5 | lr 0.001") == {"loss": [(100, 0.5)], "lr": [(100, 0.001)]}


def test_tqdm_postfix_last_drawing() -> None:
    line = (
        "Epoch 0:  50%|#####     | 10/20 [00:01<00:01, 9.1it/s, acc=0.5, loss=0.7]\r"
        "Epoch 0: 100%|##########| 20/20 [00:02<00:00, 9.5it/s, acc=0.75, loss=0.6055]"
    )
    assert parse(line) == {"acc": [(0, 0.75)], "loss": [(0, 0.6055)]}


def test_keras_fit_line() -> None:
    line = (
        "13/13 - 0s - 5ms/step - accuracy: 0.7705 - loss: 0.5273"
        " - val_accuracy: 0.7171 - val_loss: 0.5580"
    )
    got = parse(line)
    assert got == {
        "accuracy": [(0, 0.7705)],
        "loss": [(0, 0.5273)],
        "val_accuracy": [(0, 0.7171)],
        "val_loss": [(0, 0.558)],
    }


def test_keras_progress_bar_with_colours_and_backspaces() -> None:
    line = (
        "\r\x1b[1m 1/13\x1b[0m \x1b[32m━\x1b[0m 63ms/step - accuracy: 0.6406 - loss: 0.5799"
        "\x08\x08\x08\r\x1b[1m13/13\x1b[0m \x1b[32m━━\x1b[0m \x1b[1m0s\x1b[0m 10ms/step"
        " - accuracy: 0.5885 - loss: 0.6734 - val_accuracy: 0.6488 - val_loss: 0.6458"
    )
    assert set(parse(line)) == {"accuracy", "loss", "val_accuracy", "val_loss"}


def test_hugging_face_trainer_dicts_with_quoted_numbers() -> None:
    got = parse(
        "{'loss': '0.6924', 'grad_norm': '0.1589', 'learning_rate': '9.375e-05', 'epoch': '0.25'}",
        "{'eval_loss': 0.688, 'eval_accuracy': 0.5469, 'epoch': 1.0}",
    )
    assert got == {
        "loss": [(0.25, 0.6924)],
        "grad_norm": [(0.25, 0.1589)],
        "learning_rate": [(0.25, 9.375e-05)],
        "eval_loss": [(1.0, 0.688)],
        "eval_accuracy": [(1.0, 0.5469)],
    }


def test_lightning_progress_bar() -> None:
    line = (
        "Epoch 3: 100%|██████████| 16/16 [00:00<00:00, 41.18it/s, v_num=0,"
        " train_loss=0.582, val_loss=0.526, val_acc=0.812]"
    )
    assert set(parse(line)) == {"v_num", "train_loss", "val_loss", "val_acc"}


def test_two_labels_sharing_a_last_word_stay_two_series() -> None:
    got = parse(
        "Episode 10\tLast reward: 40.00\tAverage reward: 16.52",
        "Episode 20\tLast reward: 13.00\tAverage reward: 18.72",
        "Test set: Average loss: 0.0341, Accuracy: 9900/10000 (99%)",
    )
    assert got == {
        "Last reward": [(0, 40.0), (1, 13.0)],
        "Average reward": [(0, 16.52), (1, 18.72)],
        "Average loss": [(0, 0.0341)],
    }


def test_a_multi_word_label_needs_a_colon() -> None:
    assert parse("train step=5 loss=0.5") == {"loss": [(5, 0.5)]}


def test_call_like_keys() -> None:
    got = parse("[0/1][0/16] Loss_D: 1.83 Loss_G: 4.18 D(x): 0.36 D(G(z)): 0.37 / 0.01")
    assert got == {
        "Loss_D": [(0, 1.83)],
        "Loss_G": [(0, 4.18)],
        "D(x)": [(0, 0.36)],
        "D(G(z))": [(0, 0.37)],
    }


def test_a_label_ending_in_a_step_key_is_the_x_value() -> None:
    """pytorch/examples' mnist: ``Train Epoch`` is the epoch, not a series."""
    got = parse(
        "Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.300", "Train Epoch: 2 [0/60000 (0%)]\tLoss: 0.1"
    )
    assert got == {"Loss": [(1, 2.3), (2, 0.1)]}
