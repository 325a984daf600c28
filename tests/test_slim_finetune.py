"""surgery.finetune (issue 20): distillation through fit lowers the KL to the teacher."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from onebyone.surgery import decompose
from onebyone.surgery._finetune import Distiller, finetune
from onebyone.train import read_state

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=256):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 16, generator=g)
    y = (x[:, :4].sum(1) > 0).long() + 2 * (x[:, 4] > 0).long()  # 4 classes
    return TensorDataset(x, y)


def _teacher():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def _hand_kl(student, teacher, data):
    """Mean over samples of sum_c p_c (log p_c - log q_c), softmaxes at temperature 1."""
    x = data.tensors[0]
    with torch.no_grad():
        p = torch.softmax(teacher(x).double(), 1)
        q = torch.softmax(student(x).double(), 1)
    return float((p * (p.log() - q.log())).sum(1).mean())


def test_distillation_lowers_the_kl_to_the_teacher(tmp_path):
    data = _data()
    teacher = _teacher()
    with torch.no_grad():
        teacher[2].weight.mul_(4.0)  # confident logits, so that matching them takes learning
    student, _ = decompose(teacher, rank=3, round_to=1, example_input=torch.randn(1, 16))
    before = _hand_kl(student, teacher, data)
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    new, result = finetune(student, teacher, data, data, epochs=3, lr=0.2, optimizer="sgd", batch_size=16, quiet=True,
                           out_dir=tmp_path / "ft", ce_weight=0.0, kd_weight=1.0)
    after = _hand_kl(new, teacher, data)
    assert after < 0.5 * before
    assert result.kl_before == pytest.approx(before, rel=1e-4)
    assert result.kl_after == pytest.approx(after, rel=1e-4)
    assert set(result.teacher) >= {"accuracy", "loss"} and result.student_after["count"] == 256
    assert len(result.history) == 3
    # Neither the teacher nor the student passed in changed; the checkpoint holds the student only.
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, teacher_state[k], rtol=0, atol=0)
    assert new is not student
    assert read_state(tmp_path / "ft")["epoch"] == 3


def test_the_loss_is_the_weighted_kl_and_cross_entropy_by_hand():
    s, t = nn.Linear(3, 5), nn.Linear(3, 5)
    d = Distiller(s, t, temperature=2.0, kd_weight=0.7, ce_weight=0.3).train()
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 4, 0])
    logits = d(x)
    with torch.no_grad():
        p = torch.softmax(t(x).double() / 2, 1)
        logq = torch.log_softmax(s(x).double() / 2, 1)
        kl = (p * (p.log() - logq)).sum(1).mean()
        ce = -torch.log_softmax(s(x).double(), 1)[torch.arange(6), y].mean()
    expected = 0.7 * 4 * kl + 0.3 * ce
    assert float(d.training_loss(logits, y).detach()) == pytest.approx(float(expected), rel=1e-5)
    assert [k for k in d.state_dict()] == ["student.weight", "student.bias"]


def test_a_teacher_with_another_output_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"teacher returns \(2, 4\) but the student \(2, 7\).*same output shape"):
        finetune(nn.Linear(16, 7), _teacher(), _data(), epochs=1, quiet=True)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"temperature": 0}, "temperature must be a finite number > 0, got 0.0"),
    ({"kd_weight": -1}, "kd_weight must be a finite number >= 0, got -1.0"),
    ({"kd_weight": 0, "ce_weight": 0}, "both 0"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        finetune(_teacher(), _teacher(), _data(), epochs=1, quiet=True, **kwargs)
