"""Supervised fine-tuning: LoRA adapters merged on save, response-only loss, checkpoint schedules."""
