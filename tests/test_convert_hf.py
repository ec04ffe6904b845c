"""Hugging Face Transformers models converted to ODENets, tested against the unconverted
models as the oracle: tiny configs built offline (no download), two blocks each."""
import pytest
import torch

import odenets

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

VOCAB = 40


def gpt2(layers: int = 2):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=layers, n_head=2,
                                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


def _llama_form(config_class, model_class, layers: int = 2, **extra):
    """Rotary position embeddings and grouped-query attention (4 query heads, 2 key-value)."""
    torch.manual_seed(0)
    config = config_class(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                          bos_token_id=1, eos_token_id=2, pad_token_id=0, **extra)
    return model_class(config).eval()


def llama(layers: int = 2):
    return _llama_form(transformers.LlamaConfig, transformers.LlamaForCausalLM, layers)


def mistral():
    """Llama's block form under Mistral's names (and its sliding-window cache layers)."""
    return _llama_form(transformers.MistralConfig, transformers.MistralForCausalLM, sliding_window=16)


def qwen2():
    """Llama's block form with biases on the query, key and value projections."""
    return _llama_form(transformers.Qwen2Config, transformers.Qwen2ForCausalLM)


MODELS = {"gpt2": gpt2, "llama": llama, "mistral": mistral, "qwen2": qwen2}


def padded_batch():
    """Two sequences of lengths 7 and 4, the shorter padded on the left, as generate wants."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, :3] = 0
    ids[1, :3] = 0
    return ids, mask


def original_and_converted(name: str, solver: str):
    model = MODELS[name]()
    return (model, odenets.convert(model, solver=solver), *padded_batch())


@pytest.mark.parametrize("solver", ["euler", "lm"])
@pytest.mark.parametrize("name", MODELS)
def test_same_logits_loss_and_hidden_states_on_a_padded_batch(name, solver):
    model, converted, ids, mask = original_and_converted(name, solver)
    want = model(ids, attention_mask=mask, labels=ids, output_hidden_states=True)
    got = converted(ids, attention_mask=mask, labels=ids, output_hidden_states=True)
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.loss, want.loss, rtol=0, atol=1e-5)
    assert len(got.hidden_states) == len(want.hidden_states) == 3
    for g, w in zip(got.hidden_states, want.hidden_states):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-5)


@pytest.mark.parametrize("solver", ["euler", "lm"])
@pytest.mark.parametrize("name", MODELS)
def test_greedy_generation_with_the_cache_returns_the_original_tokens(name, solver):
    model, converted, ids, mask = original_and_converted(name, solver)
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, use_cache=True)
    torch.testing.assert_close(converted.generate(ids, **kwargs), model.generate(ids, **kwargs))


@pytest.mark.parametrize("name, solver", [("llama", "momentum"), ("llama", "ab3"), ("llama", "rk4"),
                                          ("llama", "midpoint"), ("gpt2", "revnet")])
def test_every_scheme_generates_with_the_cache_as_without(name, solver):
    """Each evaluation of a block has its own cache layer, so a Runge-Kutta stage or an
    Adams-Bashforth starter attends to what earlier tokens gave at the same evaluation
    (and revnet's pair, each block's attention and MLP, is one step's two functions):
    generation with the cache equals recomputing the whole sequence at every token."""
    converted = odenets.convert({"llama": llama, "gpt2": gpt2}[name](), solver=solver)
    with torch.no_grad():
        for p in converted.parameters():
            p.mul_(3.0)  # tokens that depend on the context, not a constant argmax
    ids, mask = padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False)
    cached = converted.generate(ids, use_cache=True, **kwargs)
    torch.testing.assert_close(cached, converted.generate(ids, use_cache=False, **kwargs))
    assert len(set(cached[:, 7:].flatten().tolist())) > 1


def test_a_training_step_reaches_every_k():
    converted = odenets.convert(gpt2(), solver="lm").train()
    ks = [p for n, p in converted.named_parameters() if n.endswith("coefs.k")]
    assert len(ks) == 3  # four steps, the first without a history
    ids, mask = padded_batch()
    converted(ids, attention_mask=mask, labels=ids).loss.backward()
    assert all(k.grad is not None and k.grad.abs() > 0 for k in ks)


def test_save_pretrained_round_trip_keeps_weights_and_k(tmp_path):
    converted = odenets.convert(llama(), solver="lm")
    with torch.no_grad():
        for i, k in enumerate(converted.model.layers[0].stage.net.coefficients()):
            k.fill_(0.1 * (i + 1))
    converted.save_pretrained(tmp_path)
    loaded = odenets.from_pretrained(tmp_path)
    assert type(loaded) is type(converted)
    for (n, a), (m, b) in zip(converted.state_dict().items(), loaded.state_dict().items()):
        assert n == m
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    ids, mask = padded_batch()
    torch.testing.assert_close(loaded(ids, attention_mask=mask).logits, converted(ids, attention_mask=mask).logits)


def test_from_pretrained_refuses_an_unconverted_checkpoint(tmp_path):
    gpt2().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no record of an odenets conversion"):
        odenets.from_pretrained(tmp_path)


def test_attention_weights_are_refused_clearly():
    converted = odenets.convert(gpt2(), solver="euler")
    ids, mask = padded_batch()
    with pytest.raises(ValueError, match="attention weights"):
        converted(ids, attention_mask=mask, output_attentions=True)


@pytest.mark.parametrize("solver", ["momentum", "revnet"])
def test_memory_efficient_fine_tuning_gives_the_plain_gradients_dropout_included(solver):
    """momentum and revnet with memory_efficient=True rebuild the states by inverting the
    steps (the attention mask and every other block argument handed again as the steps'
    context) and replay the dropout draws: the loss and every gradient are those of the
    same converted model trained by plain backprop."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=3, n_head=2,
                                     resid_pdrop=0.1, attn_pdrop=0.1, embd_pdrop=0.1, bos_token_id=1,
                                     eos_token_id=2, pad_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    ids, mask = padded_batch()
    results = []
    for memory_efficient in (False, True):
        converted = odenets.convert(model, solver=solver, memory_efficient=memory_efficient).train()
        torch.manual_seed(5)
        loss = converted(ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        results.append((loss.detach(), dict(converted.named_parameters())))
    (want, plain), (got, reversible) = results
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert plain.keys() == reversible.keys()
    for name, p in plain.items():
        torch.testing.assert_close(reversible[name].grad, p.grad, rtol=1e-4, atol=1e-6, msg=name)


def bert(cls):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32, num_labels=3)
    model = cls(config).eval()
    with torch.no_grad():  # each LayerNorm its own weights
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("solver", ["euler", "lm"])
def test_post_norm_bert_is_steps_each_followed_by_its_norm(solver):
    """BERT's sub-steps are x -> LayerNorm(x + g(x)); converted, each is a step with its
    own norm after it: the original's outputs, hidden states and loss."""
    ids, mask = padded_batch()
    model = bert(transformers.BertModel)
    converted = odenets.convert(model, solver=solver)
    want = model(ids, attention_mask=mask, output_hidden_states=True)
    got = converted(ids, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.pooler_output, want.pooler_output, rtol=0, atol=1e-5)
    for g, w in zip(got.hidden_states, want.hidden_states, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-5)
    model = bert(transformers.BertForSequenceClassification)
    converted = odenets.convert(model, solver=solver)
    labels = torch.tensor([0, 2])
    want, got = model(ids, attention_mask=mask, labels=labels), converted(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.loss, want.loss, rtol=0, atol=1e-5)


@pytest.mark.parametrize("solver", ["euler", "lm"])
def test_hugging_face_vit(solver):
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=16, patch_size=4, hidden_size=16, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=32, num_labels=5)
    model = transformers.ViTForImageClassification(config).eval()
    converted = odenets.convert(model, solver=solver)
    x = torch.randn(2, 3, 16, 16)
    want, got = model(x, output_hidden_states=True), converted(x, output_hidden_states=True)
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=1e-5)
    for g, w in zip(got.hidden_states, want.hidden_states, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-5)


HEADS = {"gpt2": (gpt2, lambda m: (m.transformer.h[0], m.transformer.ln_f)),
         "llama": (llama, lambda m: (m.model.layers[0], m.model.norm))}


@pytest.mark.parametrize("name", HEADS)
def test_revnet_runs_each_block_as_a_pair_from_two_copies_of_the_state(name):
    """Under revnet a block's attention and MLP sub-steps are one step's F and G, on the
    pair (x, x), and the stage returns the mean of the halves. On one block from (x, x):
    X = x + A(x), Y = x + M(X), and (X + Y) / 2 = (x + block(x)) / 2 where
    block(x) = x + A(x) + M(x + A(x)) is the original block's output: the converted model's
    logits are the head's on the mean of the embeddings and the original block's output."""
    build, parts = HEADS[name]
    model = build(layers=1)
    block, norm = parts(model)
    seen = []
    hook = block.register_forward_hook(lambda m, args, out: seen.append(out[0] if isinstance(out, tuple) else out))
    ids, mask = padded_batch()
    with torch.no_grad():
        embeddings = model(ids, attention_mask=mask, output_hidden_states=True).hidden_states[0]
        hook.remove()
        want = model.lm_head(norm((embeddings + seen[0]) / 2))
        converted = odenets.convert(model, solver="revnet")
        got = converted(ids, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(got.logits, want, rtol=0, atol=1e-5)
    assert len(got.hidden_states) == 2
    torch.testing.assert_close(got.hidden_states[0], embeddings, rtol=0, atol=0)


def test_revnet_refuses_blocks_that_do_not_split_in_two():
    with pytest.raises(ValueError, match=r"applies a norm or an activation after its additions \(post-norm\)"):
        odenets.convert(bert(transformers.BertModel), solver="revnet")
    torchvision = pytest.importorskip("torchvision")
    with pytest.raises(ValueError, match=r"a torchvision.models.resnet.BasicBlock has 1 residual sub-step\(s\)"):
        odenets.convert(torchvision.models.resnet18(), solver="revnet")
