"""Hugging Face language models converted to ODENets: forward time and training memory.

    python benchmarks/bench_hf.py [--repeats 30] [--depths 12 24 48]

1. Forward time, eager, no gradient: odenets.convert(model, 'euler') over the original,
   for a tiny GPT-2 (2 layers, width 64), a tiny Llama (2 layers, width 64, GQA) and a
   12-layer GPT-2 (width 128); a batch of 4 sequences of 64 tokens with a padding mask.
   One thread, the process's CPU time, median of interleaved runs (bench_zoo's timer).
2. Training memory: the bytes autograd saves for the backward pass (every tensor a
   saved-tensor hook sees, each storage counted once; parameters excluded) in one
   forward pass with a loss, for a small GPT-2 (width 128, 4 heads, 8 sequences of 128
   tokens) of each depth: the plain model, the model converted under momentum and under
   revnet (each block's attention and MLP one step's pair), each also with
   memory_efficient=True; and the time of a training step (forward + backward) of each
   memory_efficient=True model over the plain model's.
"""
from __future__ import annotations

import argparse

import torch
import transformers
from bench_zoo import interleaved

import odenets

transformers.logging.set_verbosity_error()


def gpt2(layers: int, width: int, dropout: float = 0.0) -> transformers.GPT2LMHeadModel:
    config = transformers.GPT2Config(vocab_size=1000, n_positions=256, n_embd=width, n_layer=layers,
                                     n_head=4, resid_pdrop=dropout, attn_pdrop=dropout, embd_pdrop=dropout)
    return transformers.GPT2LMHeadModel(config)


def llama(layers: int, width: int) -> transformers.LlamaForCausalLM:
    config = transformers.LlamaConfig(vocab_size=1000, hidden_size=width, intermediate_size=2 * width,
                                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=256)
    return transformers.LlamaForCausalLM(config)


def batch(size: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, 1000, (size, length))
    mask = torch.ones(size, length, dtype=torch.long)
    mask[0, : length // 2] = 0
    return ids, mask


def forward_times(repeats: int) -> None:
    ids, mask = batch(4, 64)
    models = {"tiny gpt2 (2 layers)": gpt2(2, 64), "tiny llama (2 layers)": llama(2, 64),
              "gpt2 (12 layers, width 128)": gpt2(12, 128)}
    for name, model in models.items():
        model.eval()
        converted = odenets.convert(model, "euler").eval()

        def run(m):
            def call() -> None:
                with torch.no_grad():
                    m(ids, attention_mask=mask, use_cache=False)
            return call
        seconds = interleaved({"original": run(model), "euler": run(converted)}, repeats, warmup=3)
        print(f"forward, {name}: original {1000 * seconds['original']:.2f} ms; euler / original "
              f"{seconds['euler'] / seconds['original']:.3f}")


def saved_bytes(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves in one forward pass with a loss (not parameters)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(ids, attention_mask=mask, labels=ids, use_cache=False).loss
    del loss
    return sum(seen.values())


def training_memory(depths: list[int], repeats: int) -> None:
    ids, mask = batch(8, 128)
    contenders = {"plain": None, "momentum": ("momentum", False), "momentum, memory_efficient": ("momentum", True),
                  "revnet": ("revnet", False), "revnet, memory_efficient": ("revnet", True)}
    print("saved activations (MB) for one training step, small GPT-2 (width 128, 8 x 128 tokens), and the time of a "
          "training step over the plain model's:")
    print(f"{'layers':>6} " + " ".join(f"{name:>26}" for name in contenders)
          + f" {'time momentum, m_e / plain':>27} {'time revnet, m_e / plain':>25}")
    for depth in depths:
        torch.manual_seed(0)
        model = gpt2(depth, 128).train()
        models = {name: model if how is None else odenets.convert(model, how[0], memory_efficient=how[1]).train()
                  for name, how in contenders.items()}
        mb = [saved_bytes(m, ids, mask) / 2 ** 20 for m in models.values()]

        def step(m):
            def call() -> None:
                m.zero_grad(set_to_none=True)
                m(ids, attention_mask=mask, labels=ids, use_cache=False).loss.backward()
            return call
        timed = ("plain", "momentum, memory_efficient", "revnet, memory_efficient")
        seconds = interleaved({name: step(models[name]) for name in timed}, repeats, warmup=1)
        print(f"{depth:>6} " + " ".join(f"{x:>26.1f}" for x in mb)
              + f" {seconds[timed[1]] / seconds['plain']:>27.2f} {seconds[timed[2]] / seconds['plain']:>25.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs of each forward pass")
    parser.add_argument("--train-repeats", type=int, default=3, help="timed training steps at each depth")
    parser.add_argument("--depths", type=int, nargs="+", default=[12, 24, 48])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    forward_times(args.repeats)
    training_memory(args.depths, args.train_repeats)


if __name__ == "__main__":
    main()
