"""`payment-platform demo`: the main flow, headless, from an empty machine to a summary of what landed where."""
