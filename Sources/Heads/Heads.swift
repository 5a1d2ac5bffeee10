// Heads module.
