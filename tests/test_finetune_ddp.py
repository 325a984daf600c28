"""surgery.finetune under a real 2-process torchrun (gloo on CPU), launched like fit's DDP test.

Checks what only a real process group shows: fit wraps the student after surgery (the
decomposed layers are inside the DistributedDataParallel module, the teacher is not), both ranks
end with the same weights, the checkpoint holds the student only, and the KL to the teacher drops.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import onebyone
from onebyone.surgery import DecomposedLinear

# Run by each of the two workers; the models and data are built the same way in both (seeded)
# and again in the test, which checks the results against its own KL by hand.
WORKER = textwrap.dedent(
    """
    import json, os, sys

    import torch
    import torch.distributed as dist
    import torch.nn.parallel
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import build
    from onebyone.surgery import DecomposedLinear
    from onebyone.surgery._finetune import finetune

    wrapped = []

    class Spy(torch.nn.parallel.DistributedDataParallel):
        def __init__(self, module, *args, **kwargs):
            super().__init__(module, *args, **kwargs)
            names = [n for n, _ in self.module.named_parameters()]
            decomposed = [n for n, m in self.module.named_modules() if isinstance(m, DecomposedLinear)]
            wrapped.append({"class": type(self.module).__name__, "parameters": names, "decomposed": decomposed,
                            "world_size": dist.get_world_size()})

    torch.nn.parallel.DistributedDataParallel = Spy  # fit imports it from here when it wraps

    out = sys.argv[1]
    teacher, student, data = build()
    new, result = finetune(student, teacher, data, data, epochs=4, lr=0.2, optimizer="sgd", batch_size=16,
                           quiet=True, out_dir=os.path.join(out, "ft"), ce_weight=0.0, kd_weight=1.0)
    rank = os.environ["RANK"]
    save_file({k: v.contiguous() for k, v in new.state_dict().items()}, os.path.join(out, f"rank{rank}.safetensors"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"wrapped": wrapped, "kl_before": result.kl_before, "kl_after": result.kl_after}, f)
    """
)

COMMON = textwrap.dedent(
    """
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from onebyone.surgery import decompose


    def build():
        g = torch.Generator().manual_seed(1)
        x = torch.randn(128, 16, generator=g)
        y = (x[:, :4].sum(1) > 0).long() + 2 * (x[:, 4] > 0).long()  # 4 classes
        torch.manual_seed(3)
        teacher = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
        with torch.no_grad():
            teacher[2].weight.mul_(4.0)  # confident logits, so that matching them takes learning
        student, _ = decompose(teacher, rank=3, round_to=1, example_input=torch.randn(1, 16))
        return teacher, student, TensorDataset(x, y)
    """
)


def _hand_kl(student, teacher, x):
    """Mean over samples of sum_c p_c (log p_c - log q_c), softmaxes at temperature 1."""
    with torch.no_grad():
        p = torch.softmax(teacher(x).double(), 1)
        q = torch.softmax(student(x).double(), 1)
    return float((p * (p.log() - q.log())).sum(1).mean())


def test_finetune_under_two_ddp_processes(tmp_path, run_process_group):
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "common.py").write_text(COMMON)
    src = str(Path(onebyone.__file__).resolve().parents[1])  # the onebyone under test, in the workers too
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "worker.py"), str(tmp_path)]  # fmt: skip
    code, _, stderr = run_process_group(cmd, env)
    assert code == 0, stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    # Wrapped once per rank, after surgery: the DDP module is the distiller around the decomposed
    # student; its parameters are the student's only (the teacher is not trained or synchronised).
    spec = importlib.util.spec_from_file_location("finetune_ddp_common", tmp_path / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    teacher, student, data = common.build()
    assert isinstance(student[0], DecomposedLinear) and isinstance(student[2], DecomposedLinear)
    student_keys = [f"student.{n}" for n, _ in student.named_parameters()]
    for report in reports:
        assert len(report["wrapped"]) == 1
        wrapped = report["wrapped"][0]
        assert wrapped["class"] == "Distiller" and wrapped["world_size"] == 2
        assert wrapped["decomposed"] == ["student.0", "student.2"]
        assert wrapped["parameters"] == student_keys

    # Both ranks end with the same weights (DDP averaged every step's gradients), and they moved.
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert w0.keys() == w1.keys() == dict(student.state_dict()).keys()
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0)
    assert any(not torch.equal(w0[k], v) for k, v in student.state_dict().items())

    # The checkpoint (written by rank 0) holds the student, as trained, and no teacher.
    state = json.loads((tmp_path / "ft" / "state.json").read_text())
    assert state["epoch"] == 4 and state["config"]["world_size"] == 2
    assert state["metrics"]["train_samples"] == 128  # each rank trained on half; all-reduced
    saved = load_file(str(tmp_path / "ft" / "epoch-0004" / "model.safetensors"))
    assert sorted(saved) == sorted(f"student.{k}" for k in w0)
    for k, v in w0.items():
        torch.testing.assert_close(saved[f"student.{k}"], v, rtol=0, atol=0)

    # The KL to the teacher drops, by our own sum over the whole data set with the trained weights.
    x = data.tensors[0]
    before = _hand_kl(student, teacher, x)
    student.load_state_dict(w0)
    after = _hand_kl(student, teacher, x)
    assert after < 0.75 * before  # 0.114 -> 0.059 here (16 steps per rank)
    for report in reports:
        assert report["kl_before"] == pytest.approx(before, rel=1e-4) and report["kl_after"] == pytest.approx(after, rel=1e-4)

