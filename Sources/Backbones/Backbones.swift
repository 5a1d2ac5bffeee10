// Backbones module.
