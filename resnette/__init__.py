"""resnette: train residual networks for image classification from scratch, fast."""
