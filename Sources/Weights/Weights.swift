// Weights module.
