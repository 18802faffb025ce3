"""A character-level LSTM language model of Shakespeare, trained with
truncated back-propagation through time: the text is cut into 32 parallel
streams read 64 characters at a time, the LSTM state carried from chunk to
chunk and detached between them. Then it writes some Shakespeare of its own.
`fastgrad train lstm` also plots the curves and solves the adding problem."""
import math
import time

import fastgrad as fg
from fastgrad.models import CharLSTM, CharVocab, StreamBatcher, split_text

fg.manual_seed(0)
text = fg.datasets.tiny_shakespeare()                # 1.1M characters, 65 distinct
vocab = CharVocab(text)
train, val = split_text(text)                        # validation: the last 10% of the text
train_ids, val_ids = vocab.encode(train), vocab.encode(val[:20_000])

model = CharLSTM(len(vocab), embed=64, hidden=256)
opt = fg.optim.Adam(model.parameters(), lr=6e-3)
batches = StreamBatcher(train_ids, batch_size=32, bptt=64)

state, start, budget = None, time.perf_counter(), 90.0   # seconds of training
for step, (x, y, first) in enumerate(batches.forever(), 1):
    if first:                                        # a new pass over the text: fresh state
        state = None
    loss, state = model.loss(x, y, state)            # mean cross-entropy, nats per character
    state = model.detach_state(state)                # truncate: no gradient into earlier chunks
    opt.zero_grad()
    loss.backward()
    fg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    elapsed = time.perf_counter() - start
    if step % 200 == 0:
        print(f"step {step:4d}  {elapsed:5.1f} s  training loss {loss.item():.3f} nats/char")
    if elapsed > budget:
        break

val_loss = model.evaluate(val_ids)                   # the state carried through the held-out text
print(f"validation: {val_loss:.3f} nats/char = {val_loss / math.log(2):.3f} bits/char after {step} steps")
print(model.sample(vocab, prompt="ROMEO:\n", n=400, temperature=0.8))
