"""The only place SQL text lives: one module per table or aggregate."""
