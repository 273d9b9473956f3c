"""callcheck: test a business's phone line the way a customer would."""

__version__ = "0.1.0"
