"""A small convolutional network for 8x8 digit images (or any small square image).

    conv3x3(c0) ReLU conv3x3(c0) ReLU maxpool2      8x8 -> 4x4
    conv3x3(c1) ReLU maxpool2                       4x4 -> 2x2
    flatten, Linear(c1 * 2 * 2, hidden) ReLU Dropout Linear(hidden, num_classes)

Padding 1 keeps each convolution's size, so only the poolings shrink the
image. Built from fastgrad.nn layers with torch's names, so the parameter
names are those of the same nn.Sequential in PyTorch.
"""
from .. import nn

__all__ = ["DigitsCNN"]


class DigitsCNN(nn.Module):
    """DigitsCNN(in_channels=1, num_classes=10, channels=(32, 64), hidden=128, dropout=0.25, image_size=8).

    forward(x): x (N, in_channels, image_size, image_size) -> logits (N, num_classes).
    """

    def __init__(self, in_channels=1, num_classes=10, channels=(32, 64), hidden=128, dropout=0.25, image_size=8):
        super().__init__()
        if len(channels) != 2:
            raise ValueError(f"DigitsCNN: channels must be two widths (c0, c1), got {channels}")
        if image_size % 4:
            raise ValueError(f"DigitsCNN: image_size must be a multiple of 4 (two 2x2 poolings), got {image_size}")
        c0, c1 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c0, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c0, c0, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c0, c1, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c1 * side * side, hidden), nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
