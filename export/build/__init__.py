"""What builds and publishes a bundle: index build and tuning, ONNX export, blessing, publish."""
