"""Residual networks for small images (He et al. 2016, the CIFAR variant) and
the plain network of the same depth that the paper compares them with.

    stem:   conv3x3(w0) BN ReLU
    stages: blocks[i] BasicBlocks of width widths[i]; every stage after the
            first halves the image with a stride-2 first block
    head:   global average pooling, Linear(widths[-1], num_classes)

A BasicBlock computes relu(BN(conv(relu(BN(conv(x))))) + shortcut(x)); the
shortcut is the identity when shapes match and a projection (1x1 conv with
the block's stride, then BN) when the width or the size changes. With
residual=False the shortcut is dropped: that is the "plain" block, and
PlainNet is ResNet built from it, same layers and same parameter count apart
from the projections.
"""
from .. import nn

__all__ = ["BasicBlock", "ResNet", "PlainNet"]


def conv3x3(in_planes, planes, stride=1):
    # no bias: the BatchNorm right after it has its own shift
    return nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """BasicBlock(in_planes, planes, stride=1, residual=True).

    forward: (N, in_planes, H, W) -> (N, planes, ceil(H / stride), ceil(W / stride))."""

    expansion = 1

    def __init__(self, in_planes, planes, stride=1, residual=True):
        super().__init__()
        self.residual = bool(residual)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.shortcut = None
        if self.residual and (stride != 1 or in_planes != planes):
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    @property
    def has_projection(self):
        return self.shortcut is not None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (self.shortcut(x) if self.shortcut is not None else x)
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet(blocks=(3, 3, 3), widths=(16, 32, 64), num_classes=10, in_channels=1, residual=True).

    Depth = 2 * sum(blocks) + 2 weight layers (stem and head), so (3, 3, 3) is ResNet-20.
    forward(x): (N, in_channels, H, W) -> logits (N, num_classes), for any H, W >= 2 ** (len(blocks) - 1).
    """

    def __init__(self, blocks=(3, 3, 3), widths=(16, 32, 64), num_classes=10, in_channels=1, residual=True):
        super().__init__()
        if len(blocks) != len(widths) or not blocks:
            raise ValueError(f"{type(self).__name__}: blocks and widths need one entry per stage, got {blocks} and "
                             f"{widths}")
        if any(b < 1 for b in blocks):
            raise ValueError(f"{type(self).__name__}: every stage needs at least one block, got {blocks}")
        self.residual = bool(residual)
        self.depth = 2 * sum(blocks) + 2
        self.stem = nn.Sequential(conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages, in_planes = [], widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            layers = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(in_planes, w, stride, residual=residual))
                in_planes = w
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # He initialisation for ReLU networks, as the paper
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(self.pool(x).flatten(1))


class PlainNet(ResNet):
    """ResNet's layers without the shortcuts: the same-depth plain baseline."""

    def __init__(self, blocks=(3, 3, 3), widths=(16, 32, 64), num_classes=10, in_channels=1):
        super().__init__(blocks, widths, num_classes, in_channels, residual=False)
