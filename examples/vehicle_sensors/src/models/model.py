"""A small 1-D convolutional network for multichannel time series: (batch, channels, time) -> class scores."""

from torch import nn


class MyModel(nn.Module):
    def __init__(self, in_channels, num_classes, width=32, dropout=0.1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, width, kernel_size=7, padding=3, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(width, 2 * width, kernel_size=5, padding=2, bias=False),
            nn.BatchNorm1d(2 * width),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(2 * width, 2 * width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm1d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
