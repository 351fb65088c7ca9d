"""Language-guided supervision: class names -> prompt -> sentence encoder -> frozen targets."""
