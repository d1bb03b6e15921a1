"""Apply a trained LoRA file with sd-scripts' own ``networks.lora`` and with our ``TextEncoderLoRA`` and
compare the adapted text encoders; also measure how far the embedding moved from its initialiser.
Run with the sd-scripts environment's Python; prints one JSON object.

    check_in_sd_scripts.py SD_SCRIPTS_DIR MODEL_DIR TOKENIZER_DIR LORA_FILE EMBEDDING_FILE INITIALIZER
"""

from __future__ import annotations

import copy
import json
import sys


def main(sd_scripts_dir: str, model_dir: str, tokenizer_dir: str, lora_file: str, embedding_file: str, initializer: str) -> dict:
    sys.path.insert(0, sd_scripts_dir)
    import torch
    from safetensors.torch import load_file
    from transformers import CLIPTextModel, CLIPTokenizer

    import networks.lora as sd_lora  # sd-scripts
    from textboost_ext.method import phrase_token_ids
    from textboost_ext.network import TextEncoderLoRA

    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    base = CLIPTextModel.from_pretrained(f"{model_dir}/text_encoder").eval()
    theirs, ours = copy.deepcopy(base), copy.deepcopy(base)
    ids = tokenizer(["a photo of a dog on the beach", "a red car"], padding="max_length", max_length=77,
                    truncation=True, return_tensors="pt").input_ids

    network, weights = sd_lora.create_network_from_weights(1.0, lora_file, None, theirs, torch.nn.Module())
    network.apply_to(theirs, None, True, False)
    missing, unexpected = network.load_state_dict(weights, strict=False)
    sd = load_file(lora_file)
    rank = int(next(v for k, v in sd.items() if k.endswith("lora_down.weight")).shape[0])
    alpha = float(next(v for k, v in sd.items() if k.endswith(".alpha")))
    our_lora = TextEncoderLoRA([ours], rank=rank, alpha=alpha)
    our_lora.load_kohya_state_dict(sd, source=lora_file)
    with torch.no_grad():
        h_base, h_theirs, h_ours = (m(ids)[0] for m in (base, theirs, ours))

    init_rows = base.get_input_embeddings().weight[phrase_token_ids(tokenizer, initializer)].detach()
    trained = load_file(embedding_file)["emb_params"].float()
    return {
        "sd_scripts_modules": len(network.text_encoder_loras),
        "our_modules": len(our_lora.module_names()),
        "missing_keys": list(missing),
        "unexpected_keys": list(unexpected),
        "lora_effect": float((h_theirs - h_base).abs().max()),
        "sd_scripts_vs_ours": float((h_theirs - h_ours).abs().max()),
        "embedding_shape": list(trained.shape),
        "embedding_moved": float((trained - init_rows).abs().max()) if trained.shape == init_rows.shape else None,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:7])))
