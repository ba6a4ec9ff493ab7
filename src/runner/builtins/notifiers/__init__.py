"""Alert notifiers: webhook, log and apprise."""
