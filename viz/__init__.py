"""Pure views over a model and tensors: arrays plus matplotlib Figures / PIL images. Never imports gradio."""
