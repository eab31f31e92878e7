"""Where articles come from: feed lists, the feed poller, feed parsing and seed files."""
