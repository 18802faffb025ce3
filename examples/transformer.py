"""A small causal Transformer as a character-level language model of
Shakespeare: token embedding plus sinusoidal position code, two pre-norm
layers of multi-head self-attention (softmax(QK^T / sqrt(d)) V, each position
seeing only the past) and a feed-forward block, trained on random windows of
64 characters. `fastgrad train transformer` trains the LSTM beside it for the
same wall-clock budget and plots both validation curves against seconds."""
import math
import time

import fastgrad as fg
from fastgrad.models import CharTransformer, CharVocab, random_windows, split_text

fg.manual_seed(0)
text = fg.datasets.tiny_shakespeare()
vocab = CharVocab(text)
train, val = split_text(text)                        # validation: the last 10% of the text
train_ids, val_ids = vocab.encode(train), vocab.encode(val[:20_000])

model = CharTransformer(len(vocab), d_model=128, nhead=4, num_layers=2, context=64, activation="relu")
opt = fg.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.01)
budget, warmup = 90.0, 30                            # seconds of training; warm-up steps

start, step = time.perf_counter(), 0
while (elapsed := time.perf_counter() - start) < budget:
    step += 1
    # linear warm-up, then cosine decay over the time budget
    lr = 5e-3 * min(1.0, step / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
    for group in opt.param_groups:
        group["lr"] = lr
    x, y = random_windows(train_ids, batch_size=16, length=64)
    loss, _ = model.loss(x, y)                       # next-character cross-entropy, nats
    opt.zero_grad()
    loss.backward()
    fg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % 200 == 0:
        print(f"step {step:4d}  {elapsed:5.1f} s  training loss {loss.item():.3f} nats/char")

val_loss = model.evaluate(val_ids)                   # sliding windows: every prediction sees >= 32 chars
print(f"validation: {val_loss:.3f} nats/char = {val_loss / math.log(2):.3f} bits/char after {step} steps")
print(model.sample(vocab, prompt="ROMEO:\n", n=300, temperature=0.8))
