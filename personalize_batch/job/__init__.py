"""The batch inference job."""
