"""A small fast network in the style of KellerJordan's cifar10-airbench (airbench94).

Why each piece is there:
- a 2x2 patch stem without padding shrinks 32x32 to 31x31 cheaply before the wide layers;
- three blocks of (conv, max-pool, batch-norm, GELU, conv, batch-norm, GELU) halve the resolution
  each time, so most compute happens at small spatial sizes;
- batch-norm without learnable scale and with a high momentum trains stably at large learning rates;
- a final max-pool and a linear head scaled down by ``1/9`` keep the initial logits small, which
  the short schedules this net is made for depend on.
"""

import torch
from torch import nn


class ConvBN(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding="same", bias=False),
            nn.BatchNorm2d(out_channels, momentum=0.4, eps=1e-12),
            nn.GELU(),
        )
        self[1].weight.requires_grad_(False)  # no learnable scale: the next conv can absorb it


class ConvGroup(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.norm1 = nn.BatchNorm2d(out_channels, momentum=0.4, eps=1e-12)
        self.norm1.weight.requires_grad_(False)
        self.act = nn.GELU()
        self.conv2 = ConvBN(out_channels, out_channels)

    def forward(self, x):
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.conv2(x)


class AirbenchNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, widths=(64, 256, 256), stem_width: int = 24):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, 2, padding=0, bias=True), nn.GELU())
        groups, channels = [], stem_width
        for width in widths:
            groups.append(ConvGroup(channels, width))
            channels = width
        self.groups = nn.Sequential(*groups)
        self.head = nn.Linear(channels, num_classes, bias=False)
        self.logit_scale = 1 / 9

    def forward(self, x):
        x = self.groups(self.stem(x))
        x = torch.amax(x, dim=(2, 3))
        return self.head(x) * self.logit_scale
