// Finetune module.
