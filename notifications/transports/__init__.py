"""One transport per channel; only these modules know a provider's library."""
