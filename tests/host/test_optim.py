"""Optimizers (plain and 8-bit AdamW), kohya optimizer_args, LR schedules."""

from __future__ import annotations

import builtins

import pytest
import torch

from textboost_ext.host import optim


def _groups() -> list[dict]:
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(8, 4)), torch.nn.Parameter(torch.randn(16))
    return [{"name": "lora", "params": [a], "lr": 1e-2, "weight_decay": 0.05}, {"name": "emb", "params": [b], "lr": 1e-3, "weight_decay": 0.0}]


def _step(opt: torch.optim.Optimizer) -> None:
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    opt.step()


def test_adamw_groups_keep_their_weight_decay_and_args_are_parsed() -> None:
    opt = optim.build_optimizer(_groups(), "adamw", ["weight_decay=0.2", "betas=(0.8, 0.9)", "eps=1e-6"])
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]  # the hook's groups win
    assert opt.param_groups[0]["betas"] == (0.8, 0.9) and opt.param_groups[0]["eps"] == 1e-6
    groups = _groups()
    del groups[0]["weight_decay"]
    opt = optim.build_optimizer(groups, "AdamW", ["weight_decay=0.2"])
    assert opt.param_groups[0]["weight_decay"] == 0.2  # optimizer_args fill a group that has none
    assert optim.split_optimizer_args("AdamW", [])[1] == optim.DEFAULT_WEIGHT_DECAY


def test_unknown_optimizer_arg_and_type_are_named() -> None:
    with pytest.raises(ValueError, match=r"no argument 'betaz'"):
        optim.build_optimizer(_groups(), "AdamW", ["betaz=(0.9,0.99)"])
    with pytest.raises(ValueError, match=r"'min_8bit_size'"):
        optim.build_optimizer(_groups(), "AdamW", ["min_8bit_size=0"])  # an 8-bit-only key
    with pytest.raises(ValueError, match=r"optimizer_type = 'AdamW9bit'"):
        optim.build_optimizer(_groups(), "AdamW9bit", [])


@pytest.mark.parametrize(("name", "cls"), [("Lion8bit", "Lion8bit"), ("SGDNesterov", "SGD"), ("sgdnesterov8bit", "SGD8bit"),
                                           ("Adafactor", "Adafactor"), ("PagedAdamW8bit", "PagedAdamW8bit"),
                                           ("torch.optim.RMSprop", "RMSprop")])
def test_kohya_optimizer_names_and_module_class_build_and_step(name: str, cls: str) -> None:
    args = ["min_8bit_size=0"] if "8bit" in name.lower() else []
    opt = optim.build_optimizer(_groups(), name, args)
    assert type(opt).__name__ == cls
    if cls == "SGD":  # kohya's SGDNesterov: nesterov momentum 0.9
        assert all(g["nesterov"] and g["momentum"] == 0.9 for g in opt.param_groups)
    if cls == "SGD8bit":  # bitsandbytes keeps the momentum as betas[0]
        assert opt.defaults["betas"][0] == 0.9
    before = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
    _step(opt)
    after = [p for g in opt.param_groups for p in g["params"]]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))


def test_missing_optimizer_library_and_bad_args_are_named() -> None:
    with pytest.raises(optim.OptimizerUnavailableError, match=r"pip install prodigyopt"):
        optim.check_optimizer("Prodigy", [])
    with pytest.raises(optim.OptimizerUnavailableError, match=r"no_such_module"):
        optim.check_optimizer("no_such_module.Opt", [])
    with pytest.raises(ValueError, match=r"Lion8bit takes no argument\(s\) \['amsgrad'\]"):
        optim.check_optimizer("Lion8bit", ["amsgrad=True"])


def test_cosine_with_restarts_honours_num_cycles_and_polynomial_power() -> None:
    opt = optim.build_optimizer(_groups(), "AdamW", [])
    sched = optim.build_lr_scheduler("cosine_with_restarts", opt, 0, 12, num_cycles=3)
    lrs = []
    for _ in range(12):
        lrs.append(sched.get_last_lr()[0])
        _step(opt)
        sched.step()
    assert lrs[0] == lrs[4] == lrs[8] == pytest.approx(1e-2)  # three restarts, not one cycle
    opt = optim.build_optimizer(_groups(), "AdamW", [])
    linear = optim.build_lr_scheduler("polynomial", opt, 0, 10, power=1.0)
    opt2 = optim.build_optimizer(_groups(), "AdamW", [])
    squared = optim.build_lr_scheduler("polynomial", opt2, 0, 10, power=2.0)
    for _ in range(5):
        _step(opt), _step(opt2)
        linear.step(), squared.step()
    assert squared.get_last_lr()[0] < linear.get_last_lr()[0]


def test_adamw8bit_uses_uint8_state_with_min_8bit_size_0() -> None:
    opt = optim.build_optimizer(_groups(), "AdamW8bit", ["min_8bit_size=0"])
    assert type(opt).__name__ == "AdamW8bit"
    before = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
    _step(opt)
    after = [p.detach() for g in opt.param_groups for p in g["params"]]
    assert all(not torch.equal(x, y) for x, y in zip(before, after))
    assert torch.uint8 in optim.optimizer_state_dtypes(opt)
    # without min_8bit_size=0 these tiny tensors keep 32-bit state (bitsandbytes' 4096-element threshold)
    opt32 = optim.build_optimizer(_groups(), "AdamW8bit", [])
    _step(opt32)
    assert torch.uint8 not in optim.optimizer_state_dtypes(opt32)


def test_bitsandbytes_import_failure_says_why_and_how_to_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if name == "bitsandbytes" or name.startswith("bitsandbytes."):
            raise ImportError("libbitsandbytes_cuda.so: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(RuntimeError) as info:
        optim.build_optimizer(_groups(), "AdamW8bit", [])
    message = str(info.value)
    assert "cannot open shared object file" in message
    assert 'optimizer_type = "AdamW"' in message


@pytest.mark.parametrize("name", ["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"])
def test_lr_schedulers(name: str) -> None:
    opt = optim.build_optimizer(_groups(), "AdamW", [])
    warmup = 0 if name == "constant" else 2
    sched = optim.build_lr_scheduler(name, opt, warmup, 10)
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        _step(opt)
        sched.step()
    if name == "constant":
        assert lrs == [1e-2] * 10
    else:
        assert lrs[0] == 0.0 and lrs[2] == pytest.approx(1e-2)
    if name in ("linear", "cosine", "polynomial"):
        assert lrs[-1] < lrs[2]


def test_lr_scheduler_errors() -> None:
    opt = optim.build_optimizer(_groups(), "AdamW", [])
    with pytest.raises(ValueError, match=r"lr_scheduler = 'cosine_annealing'"):
        optim.build_lr_scheduler("cosine_annealing", opt, 0, 10)
    with pytest.raises(ValueError, match=r"constant_with_warmup"):
        optim.build_lr_scheduler("constant", opt, 5, 10)
