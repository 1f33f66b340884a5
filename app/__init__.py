"""The Gradio UI: wiring only. Every callback is a few lines around an alexnet/ or viz/ call."""
