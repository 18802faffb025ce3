"""Sequence to sequence: an LSTM encoder-decoder with dot-product attention
learns to reverse sequences of 3-12 symbols. Training uses teacher forcing
(the decoder reads the true previous token); at test time it decodes greedily
from its own predictions, on sources it never saw. Seq2Seq(arch="transformer")
is the Transformer version; `fastgrad train seq2seq` trains both."""
import fastgrad as fg
from fastgrad.models import Seq2Seq, sequence_accuracy, toy_translation_data

fg.manual_seed(0)
# ids: 0 PAD, 1 BOS, 2 EOS, symbols 3..12; targets end with EOS
src, tgt, seen = toy_translation_data(20000, n_symbols=10, min_len=3, max_len=12, task="reverse", seed=0)
test_src, test_tgt, _ = toy_translation_data(1000, 10, 3, 12, "reverse", seed=1, exclude=seen)

model = Seq2Seq(vocab_size=13, arch="rnn", d_model=128)
opt = fg.optim.Adam(model.parameters(), lr=3e-3)
sched = fg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=800)

for step in range(1, 801):
    idx = fg.randint(0, len(src), (64,))
    loss = model.loss(src[idx], tgt[idx])            # teacher forcing, PAD ignored
    opt.zero_grad()
    loss.backward()
    fg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    if step % 200 == 0:
        pred = model.greedy_decode(test_src, max_len=13)
        exact, per_token = sequence_accuracy(pred, test_tgt)
        print(f"step {step}  loss {loss.item():.4f}  held-out exact {exact:.3f}  per-token {per_token:.3f}")

pred = model.greedy_decode(test_src[:3], max_len=13)
for s, p in zip(test_src[:3].tolist(), pred.tolist()):
    print([a - 3 for a in s if a > 2], "->", [a - 3 for a in p if a > 2])
