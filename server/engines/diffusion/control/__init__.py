"""Control layers for the diffusers engine: ControlNet and IP-Adapter models, the
kinds of control the engine publishes, and the preprocessors that turn a layer
into what a model reads."""
