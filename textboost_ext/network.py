"""Text-encoder LoRA built with peft, named the kohya way.

Every adapted Linear gets a canonical kohya module name,
``<prefix>_text_model_encoder_layers_<i>_<self_attn_q_proj|...|mlp_fc2>``, derived from the layer index
and module kind, NOT from the module path: transformers 5 dropped the ``text_model`` level of
``CLIPTextModel``, and path-derived names then load nowhere (lora-format.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence

import torch
from torch import nn

# The lora_targets rule is torch-free, in the config layer, so the config checks and this class share it.
from textboost_ext.config.options import LORA_TARGETS, lora_target_problems

# module kind as it appears in the path -> kohya suffix
KOHYA_MODULE_SUFFIX = {
    "self_attn.q_proj": "self_attn_q_proj",
    "self_attn.k_proj": "self_attn_k_proj",
    "self_attn.v_proj": "self_attn_v_proj",
    "self_attn.out_proj": "self_attn_out_proj",
    "mlp.fc1": "mlp_fc1",
    "mlp.fc2": "mlp_fc2",
}
logger = logging.getLogger(__name__)
_LAYER_PATH = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)\.((?:self_attn|mlp)\.\w+)$")
ADAPTER_NAME = "default"


def te_prefixes(n_text_encoders: int) -> list[str]:
    """kohya prefixes: ``lora_te`` for a single encoder, ``lora_te1``/``lora_te2`` for SDXL."""
    return ["lora_te"] if n_text_encoders == 1 else [f"lora_te{i + 1}" for i in range(n_text_encoders)]


def kohya_module_name(prefix: str, layer_index: int, module_kind: str) -> str:
    return f"{prefix}_text_model_encoder_layers_{layer_index}_{KOHYA_MODULE_SUFFIX[module_kind]}"


def validate_targets(targets: Sequence[str]) -> None:
    """Raise ValueError for a ``lora_targets`` list the config checks would reject (the same rule)."""
    problems = lora_target_problems(targets)
    if problems:
        raise ValueError("; ".join(problems))


class TextEncoderLoRA(nn.Module):
    """LoRA adapters on one or two CLIP text encoders (peft ``LoraLayer`` under kohya names).

    ``multiplier`` follows kohya's ``network.set_multiplier``: 0 gives exactly the original encoder
    (used by the knowledge-preservation loss), 1 the trained one.
    """

    def __init__(
        self,
        text_encoders: Sequence[nn.Module],
        rank: int = 4,
        alpha: float = 4.0,
        targets: Sequence[str] = LORA_TARGETS,
        layer_counts: Sequence[int] | None = None,
    ) -> None:
        """``layer_counts``: per encoder, adapt only its first ``n`` layers (those whose output reaches the
        conditioning, ``models.conditioning.conditioning_layer_counts``); None adapts every layer."""
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model
        from peft.tuners.lora import LoraLayer

        if rank < 1:
            raise ValueError(f"network_dim must be >= 1, got {rank}")
        if alpha <= 0:
            raise ValueError(f"network_alpha must be > 0, got {alpha}")
        validate_targets(targets)
        self.rank = int(rank)
        self.alpha = float(alpha)
        self.targets = list(targets)
        self.prefixes = te_prefixes(len(text_encoders))
        self.layer_counts = _layer_counts(text_encoders, layer_counts)
        self.multiplier = 1.0
        self._layers: dict[str, LoraLayer] = {}
        for prefix, encoder, count in zip(self.prefixes, text_encoders, self.layer_counts):
            # N(0, 1/r^2) for A ("gaussian" in peft), zeros for B: the adapted model equals the original at step 0
            config = LoraConfig(r=self.rank, lora_alpha=self.alpha, target_modules=_target_pattern(self.targets, count),
                                init_lora_weights="gaussian", lora_dropout=0.0)
            inject_adapter_in_model(config, encoder, adapter_name=ADAPTER_NAME)
            for path, module in encoder.named_modules():
                if not isinstance(module, LoraLayer):
                    continue
                match = _LAYER_PATH.search(path)
                if match is None:
                    raise RuntimeError(f"LoRA was injected into an unexpected module {path!r}")
                name = kohya_module_name(prefix, int(match.group(1)), match.group(2))
                if name in self._layers:
                    raise RuntimeError(f"duplicate LoRA module name {name}")
                self._layers[name] = module
        if not self._layers:
            raise RuntimeError(f"no text-encoder module matched lora_targets {self.targets}")
        # register the LoRA submodules so .parameters()/.state_dict() of this network see them
        self.lora_down = nn.ModuleDict({n.replace(".", "_"): l.lora_A[ADAPTER_NAME] for n, l in self._layers.items()})
        self.lora_up = nn.ModuleDict({n.replace(".", "_"): l.lora_B[ADAPTER_NAME] for n, l in self._layers.items()})

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def module_names(self) -> list[str]:
        return list(self._layers)

    def named_lora_layers(self) -> Iterator[tuple[str, nn.Module]]:
        yield from self._layers.items()

    def set_multiplier(self, multiplier: float) -> None:
        self.multiplier = float(multiplier)
        for layer in self._layers.values():
            layer.scaling[ADAPTER_NAME] = self.scale * self.multiplier

    def trainable_parameters(self) -> list[nn.Parameter]:
        params: list[nn.Parameter] = []
        for layer in self._layers.values():
            params += [layer.lora_A[ADAPTER_NAME].weight, layer.lora_B[ADAPTER_NAME].weight]
        return params

    def kohya_state_dict(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """``<name>.lora_down.weight`` [r, in], ``<name>.lora_up.weight`` [out, r] in ``dtype``; ``<name>.alpha``
        (0-dim) always float32: in fp16/bf16 an alpha such as 0.3 would round (bf16: 0.30078125) and every
        client would scale by a value that ``ss_network_alpha`` does not state."""
        sd: dict[str, torch.Tensor] = {}
        for name, layer in self._layers.items():
            sd[f"{name}.lora_down.weight"] = layer.lora_A[ADAPTER_NAME].weight.detach().to("cpu", dtype).contiguous()
            sd[f"{name}.lora_up.weight"] = layer.lora_B[ADAPTER_NAME].weight.detach().to("cpu", dtype).contiguous()
            sd[f"{name}.alpha"] = torch.tensor(self.alpha, dtype=torch.float32)
        return sd

    def trained_layers(self) -> dict[str, list[int]]:
        """``{kohya prefix: [layer indices]}`` of the adapted layers (recorded in the file's metadata)."""
        return {prefix: list(range(count)) for prefix, count in zip(self.prefixes, self.layer_counts)}

    @torch.no_grad()
    def load_kohya_state_dict(self, sd: dict[str, torch.Tensor], source: str = "<state dict>") -> None:
        """Load weights saved by ``kohya_state_dict`` (warm start, resume). Every key must match, except that
        modules this network does not create are skipped when they are exact no-ops (all-zero ``lora_up``
        or ``lora_down``): files exported before dead layers were left out carry them."""
        expected = set(self.kohya_state_dict().keys())
        noop = _noop_modules({k: v for k, v in sd.items() if k not in expected})
        if noop:
            logger.warning("%s: skipping %d module(s) of layers this network does not adapt (all zero in the file, "
                           "no effect), e.g. %s", source, len(noop), sorted(noop)[0])
            sd = {k: v for k, v in sd.items() if k.partition(".")[0] not in noop}
        missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{source}: LoRA keys do not match this network (rank {self.rank}, targets {self.targets}, layers "
                f"{_ranges(self.trained_layers())}): {len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} "
                f"unexpected (e.g. {unexpected[:2]})"
            )
        for name, layer in self._layers.items():
            down, up = sd[f"{name}.lora_down.weight"], sd[f"{name}.lora_up.weight"]
            a, b = layer.lora_A[ADAPTER_NAME].weight, layer.lora_B[ADAPTER_NAME].weight
            if down.shape != a.shape or up.shape != b.shape:
                raise ValueError(f"{source}: {name} has shapes {tuple(down.shape)}/{tuple(up.shape)}, expected {tuple(a.shape)}/{tuple(b.shape)}")
            a.copy_(down.to(a.dtype))
            b.copy_(up.to(b.dtype))
            file_alpha = float(sd[f"{name}.alpha"])
            if abs(file_alpha - self.alpha) > 1e-6 * max(1.0, self.alpha):
                raise ValueError(f"{source}: {name}.alpha is {file_alpha}, network_alpha is {self.alpha}; set network_alpha to match")


def _layer_counts(text_encoders: Sequence[nn.Module], counts: Sequence[int] | None) -> list[int]:
    totals = [int(te.config.num_hidden_layers) for te in text_encoders]
    if counts is None:
        return totals
    counts = [int(c) for c in counts]
    if len(counts) != len(totals) or any(not 1 <= c <= t for c, t in zip(counts, totals)):
        raise ValueError(f"layer_counts {counts} must give 1..n layers for each of the encoders' {totals} layers")
    return counts


def _target_pattern(targets: Sequence[str], layer_count: int) -> str:
    """A peft ``target_modules`` regex (matched against the whole module path) for the targets of layers
    ``0..layer_count-1`` (the path may or may not have transformers 4's ``text_model.`` level)."""
    layers = "|".join(str(i) for i in range(layer_count))
    kinds = "|".join(re.escape(t) for t in targets)
    return rf"(?:.*\.)?encoder\.layers\.(?:{layers})\.(?:self_attn|mlp)\.(?:{kinds})"


def _noop_modules(sd: dict[str, torch.Tensor]) -> set[str]:
    """Module names whose up or down weight is all zero (the module adds nothing)."""
    names = {key.partition(".")[0] for key in sd}
    return {name for name in names
            if any(key in sd and not bool(sd[key].float().abs().sum()) for key in
                   (f"{name}.lora_up.weight", f"{name}.lora_down.weight"))}


def _ranges(layers: dict[str, list[int]]) -> str:
    return ", ".join(f"{prefix} {ids[0]}-{ids[-1]}" if ids else f"{prefix} none" for prefix, ids in layers.items())
