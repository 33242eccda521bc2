"""The serving bundle: assemble, publish behind the blessing gate, register."""
